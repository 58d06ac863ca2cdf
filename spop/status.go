package spop

import (
	"fmt"
	"strconv"
)

// Status is a DISCONNECT frame's status-code (doc/SPOE.txt 3.5). An agent
// may define its own codes among the unassigned ones.
type Status uint32

// The status codes of doc/SPOE.txt 3.5, in its words.
const (
	StatusNormal          Status = 0  // normal (no error occurred)
	StatusIO              Status = 1  // I/O error
	StatusTimeout         Status = 2  // a timeout occurred
	StatusTooBig          Status = 3  // frame is too big
	StatusInvalid         Status = 4  // invalid frame received
	StatusNoVersion       Status = 5  // version value not found
	StatusNoFrameSize     Status = 6  // max-frame-size value not found
	StatusNoCapabilities  Status = 7  // capabilities value not found
	StatusBadVersion      Status = 8  // unsupported version
	StatusBadFrameSize    Status = 9  // max-frame-size too big or too small
	StatusFragmentation   Status = 10 // payload fragmentation is not supported
	StatusInterlaced      Status = 11 // invalid interlaced frames
	StatusFrameIDNotFound Status = 12 // frame-id not found
	StatusResource        Status = 13 // resource allocation error
	StatusUnknown         Status = 99 // an unknown error occurred
)

// statusText is HAProxy's own wording (src/mux_spop.c spop_err_reasons),
// sent as the DISCONNECT message when there is nothing more specific.
var statusText = map[Status]string{
	StatusNormal:          "normal",
	StatusIO:              "I/O error",
	StatusTimeout:         "a timeout occurred",
	StatusTooBig:          "frame is too big",
	StatusInvalid:         "invalid frame received",
	StatusNoVersion:       "version value not found",
	StatusNoFrameSize:     "max-frame-size value not found",
	StatusNoCapabilities:  "capabilities value not found",
	StatusBadVersion:      "unsupported version",
	StatusBadFrameSize:    "max-frame-size too big or too small",
	StatusFragmentation:   "fragmentation not supported",
	StatusInterlaced:      "invalid interlaced frames",
	StatusFrameIDNotFound: "frame-id not found",
	StatusResource:        "resource allocation error",
	StatusUnknown:         "an unknown error occurred",
}

// String returns the spec's description of s, or "status N" for a code it
// does not assign.
func (s Status) String() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return "status " + strconv.FormatUint(uint64(s), 10)
}

// Error is a protocol error: what went wrong and the status the agent puts
// in its DISCONNECT for it. Decoders return it so that the server answers a
// bad frame with the right code; a DISCONNECT received from HAProxy is
// reported as one too.
type Error struct {
	Status Status
	Msg    string // detail for people; "" for the status's own words
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "spop: " + e.Status.String()
	}
	return "spop: " + e.Status.String() + ": " + e.Msg
}

// message is what goes in the DISCONNECT frame's message item.
func (e *Error) message() string {
	if e.Msg == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Msg
}

func errorf(s Status, format string, args ...any) *Error {
	return &Error{Status: s, Msg: fmt.Sprintf(format, args...)}
}
