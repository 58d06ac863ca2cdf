package spop

import (
	"encoding/binary"
	"io"
	"strconv"
)

// FrameType is a frame's first byte (doc/SPOE.txt 3.2.2).
type FrameType uint8

// The frame types; HAProxy sends 1 to 3, agents 101 to 103.
const (
	FrameHAProxyHello      FrameType = 1
	FrameHAProxyDisconnect FrameType = 2
	FrameNotify            FrameType = 3
	FrameAgentHello        FrameType = 101
	FrameAgentDisconnect   FrameType = 102
	FrameAck               FrameType = 103
)

var frameTypeNames = map[FrameType]string{
	FrameHAProxyHello:      "HAPROXY-HELLO",
	FrameHAProxyDisconnect: "HAPROXY-DISCONNECT",
	FrameNotify:            "NOTIFY",
	FrameAgentHello:        "AGENT-HELLO",
	FrameAgentDisconnect:   "AGENT-DISCONNECT",
	FrameAck:               "ACK",
}

// String returns the spec's name of t.
func (t FrameType) String() string {
	if s, ok := frameTypeNames[t]; ok {
		return s
	}
	return "FRAME-TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Flags are a frame's 32 flag bits.
type Flags uint32

const (
	// FlagFin marks the last fragment of a payload. Fragmentation is
	// deprecated, so every frame must carry it.
	FlagFin Flags = 1
	// FlagAbort cancels the processing of the frame's stream-id and
	// frame-id; HAProxy only sent it to end an unfinished fragmented frame.
	FlagAbort Flags = 2
)

const (
	// MinFrameSize is the smallest max-frame-size either side may announce.
	MinFrameSize = 256
	// minFrameLen is type, flags and two one-byte varints: a frame shorter
	// than this cannot even carry its header.
	minFrameLen = 1 + 4 + 1 + 1
)

// Frame is one frame with its payload left undecoded: the HELLO and
// DISCONNECT decoders, DecodeMessages and DecodeActions read it by type.
type Frame struct {
	Type     FrameType
	Flags    Flags
	StreamID uint64 // 0 for HELLO and DISCONNECT
	FrameID  uint64 // 0 for HELLO and DISCONNECT
	Payload  []byte // shares the memory DecodeFrame was given
}

// DecodeFrame decodes b, one frame without its 4-byte length prefix. It
// checks the header only; an unknown type is not an error here.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < minFrameLen {
		return Frame{}, errorf(StatusInvalid, "frame of %d bytes is shorter than its header", len(b))
	}
	f := Frame{Type: FrameType(b[0]), Flags: Flags(binary.BigEndian.Uint32(b[1:5]))}
	p := b[5:]
	var n int
	if f.StreamID, n = decodeVarint(p); n <= 0 {
		return Frame{}, &Error{Status: StatusInvalid, Msg: "bad stream-id"}
	}
	p = p[n:]
	if f.FrameID, n = decodeVarint(p); n <= 0 {
		return Frame{}, &Error{Status: StatusInvalid, Msg: "bad frame-id"}
	}
	f.Payload = p[n:]
	return f, nil
}

// AppendFrame appends f with its 4-byte length prefix.
func AppendFrame(dst []byte, f Frame) []byte {
	dst, start := beginFrame(dst, f.Type, f.Flags, f.StreamID, f.FrameID)
	return endFrame(append(dst, f.Payload...), start)
}

// beginFrame appends a frame header with room for the length, which
// endFrame fills in once the payload is appended after it, so a frame is
// built in one buffer without knowing its size first.
func beginFrame(dst []byte, t FrameType, fl Flags, sid, fid uint64) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(t))
	dst = binary.BigEndian.AppendUint32(dst, uint32(fl))
	dst = AppendVarint(dst, sid)
	return AppendVarint(dst, fid), start
}

func endFrame(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ReadFrame reads one length-prefixed frame from r into buf (grown when too
// small; pass the returned slice back to reuse it). A length over max is
// refused with StatusTooBig before anything is allocated or read past it,
// as it must be for a length a peer chose. The Frame shares buf's memory.
func ReadFrame(r io.Reader, buf []byte, max uint32) (Frame, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, buf, err
	}
	n, err := checkLength(binary.BigEndian.Uint32(hdr[:]), max)
	if err != nil {
		return Frame{}, buf, err
	}
	buf = grow(buf, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Frame{}, buf, unexpectedEOF(err)
	}
	f, err := DecodeFrame(buf)
	return f, buf, err
}

// checkLength checks a frame's length prefix against the negotiated size.
func checkLength(n, max uint32) (int, error) {
	if n > max {
		return 0, errorf(StatusTooBig, "frame of %d bytes, max-frame-size is %d", n, max)
	}
	if n < minFrameLen {
		return 0, errorf(StatusInvalid, "frame of %d bytes is shorter than its header", n)
	}
	return int(n), nil
}

// grow returns buf resized to n, reallocating only when its capacity is
// short, so a connection's buffer grows to the largest frame it has seen.
func grow(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, n)
	}
	return buf[:n]
}

// unexpectedEOF turns the EOF that ends a frame body early into the
// truncation it is.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
