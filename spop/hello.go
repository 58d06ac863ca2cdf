package spop

import (
	"strconv"
	"strings"
)

// Version is the SPOP version this package speaks, unchanged from HAProxy
// 1.8 to 3.x.
const Version = "2.0"

// CapPipelining is the capability to have several NOTIFY frames in flight
// on one connection, each ACKed when ready, in any order. ("async", ACKs on
// another connection, and "fragmentation" are deprecated and ignored.)
const CapPipelining = "pipelining"

// The items of the HELLO and DISCONNECT KV-LISTs.
const (
	keySupportedVersions = "supported-versions"
	keyVersion           = "version"
	keyMaxFrameSize      = "max-frame-size"
	keyCapabilities      = "capabilities"
	keyHealthcheck       = "healthcheck"
	keyEngineID          = "engine-id"
	keyStatusCode        = "status-code"
	keyMessage           = "message"
)

// HAProxyHello is the payload of the HAPROXY-HELLO frame that opens every
// connection (doc/SPOE.txt 3.2.4).
type HAProxyHello struct {
	SupportedVersions string // comma-separated "Major.Minor", e.g. "2.0"
	MaxFrameSize      uint32 // HAProxy's limit: tune.bufsize - 4 unless configured
	Capabilities      []string
	Healthcheck       bool   // from "option spop-check": answer, then close
	EngineID          string // optional; identifies the SPOE engine (one per HAProxy process and filter)
}

// AgentHello is the payload of the AGENT-HELLO frame that answers it.
type AgentHello struct {
	Version      string
	MaxFrameSize uint32 // at most HAProxy's; binds both sides from then on
	Capabilities []string
}

// Disconnect is the payload of either side's DISCONNECT frame.
type Disconnect struct {
	Status  Status
	Message string
}

// AppendFrame appends h as a HAPROXY-HELLO frame.
func (h HAProxyHello) AppendFrame(dst []byte) []byte {
	dst, start := beginFrame(dst, FrameHAProxyHello, FlagFin, 0, 0)
	dst = AppendKVs(dst, []KV{
		{keySupportedVersions, String(h.SupportedVersions)},
		{keyMaxFrameSize, Uint32(h.MaxFrameSize)},
		{keyCapabilities, String(strings.Join(h.Capabilities, ","))},
	})
	if h.Healthcheck {
		dst = AppendKVs(dst, []KV{{keyHealthcheck, Bool(true)}})
	}
	if h.EngineID != "" {
		dst = AppendKVs(dst, []KV{{keyEngineID, String(h.EngineID)}})
	}
	return endFrame(dst, start)
}

// AppendFrame appends h as an AGENT-HELLO frame.
func (h AgentHello) AppendFrame(dst []byte) []byte {
	dst, start := beginFrame(dst, FrameAgentHello, FlagFin, 0, 0)
	dst = AppendKVs(dst, []KV{
		{keyVersion, String(h.Version)},
		{keyMaxFrameSize, Uint32(h.MaxFrameSize)},
		{keyCapabilities, String(strings.Join(h.Capabilities, ","))},
	})
	return endFrame(dst, start)
}

// AppendFrame appends d as a DISCONNECT frame of type t, which is
// FrameAgentDisconnect or FrameHAProxyDisconnect.
func (d Disconnect) AppendFrame(dst []byte, t FrameType) []byte {
	dst, start := beginFrame(dst, t, FlagFin, 0, 0)
	dst = AppendKVs(dst, []KV{
		{keyStatusCode, Uint32(uint32(d.Status))},
		{keyMessage, String(d.Message)},
	})
	return endFrame(dst, start)
}

// DecodeHAProxyHello decodes a HAPROXY-HELLO payload. A missing mandatory
// item is an *Error with the spec's status for it (5, 6 or 7); an item of
// the wrong type is StatusInvalid. Unknown items are ignored, as the spec
// asks, so that a newer HAProxy can add some.
func DecodeHAProxyHello(payload []byte) (HAProxyHello, error) {
	kvs, err := DecodeKVs(payload, Limits{})
	if err != nil {
		return HAProxyHello{}, err
	}
	var h HAProxyHello
	var haveVsn, haveSize, haveCaps bool
	for _, kv := range kvs {
		switch kv.Name {
		case keySupportedVersions:
			if h.SupportedVersions, err = stringItem(kv); err != nil {
				return HAProxyHello{}, err
			}
			haveVsn = true
		case keyMaxFrameSize:
			if h.MaxFrameSize, err = sizeItem(kv); err != nil {
				return HAProxyHello{}, err
			}
			haveSize = true
		case keyCapabilities:
			c, err := stringItem(kv)
			if err != nil {
				return HAProxyHello{}, err
			}
			h.Capabilities, haveCaps = splitList(c), true
		case keyHealthcheck:
			if kv.Value.Type() != TypeBool {
				return HAProxyHello{}, errorf(StatusInvalid, "%s is %v, want bool", kv.Name, kv.Value.Type())
			}
			h.Healthcheck = kv.Value.Bool()
		case keyEngineID:
			if h.EngineID, err = stringItem(kv); err != nil {
				return HAProxyHello{}, err
			}
		}
	}
	switch {
	case !haveVsn:
		return HAProxyHello{}, &Error{Status: StatusNoVersion}
	case !haveSize:
		return HAProxyHello{}, &Error{Status: StatusNoFrameSize}
	case !haveCaps:
		return HAProxyHello{}, &Error{Status: StatusNoCapabilities}
	}
	return h, nil
}

// DecodeAgentHello decodes an AGENT-HELLO payload, with the statuses of
// DecodeHAProxyHello. It is HAProxy's side of the handshake: tests and
// tools that play HAProxy use it.
func DecodeAgentHello(payload []byte) (AgentHello, error) {
	kvs, err := DecodeKVs(payload, Limits{})
	if err != nil {
		return AgentHello{}, err
	}
	var h AgentHello
	var haveVsn, haveSize, haveCaps bool
	for _, kv := range kvs {
		switch kv.Name {
		case keyVersion:
			if h.Version, err = stringItem(kv); err != nil {
				return AgentHello{}, err
			}
			haveVsn = true
		case keyMaxFrameSize:
			if h.MaxFrameSize, err = sizeItem(kv); err != nil {
				return AgentHello{}, err
			}
			haveSize = true
		case keyCapabilities:
			c, err := stringItem(kv)
			if err != nil {
				return AgentHello{}, err
			}
			h.Capabilities, haveCaps = splitList(c), true
		}
	}
	switch {
	case !haveVsn:
		return AgentHello{}, &Error{Status: StatusNoVersion}
	case !haveSize:
		return AgentHello{}, &Error{Status: StatusNoFrameSize}
	case !haveCaps:
		return AgentHello{}, &Error{Status: StatusNoCapabilities}
	}
	return h, nil
}

// DecodeDisconnect decodes a DISCONNECT payload. A missing status-code is
// StatusInvalid; a missing message is tolerated, the status says enough.
func DecodeDisconnect(payload []byte) (Disconnect, error) {
	kvs, err := DecodeKVs(payload, Limits{})
	if err != nil {
		return Disconnect{}, err
	}
	var d Disconnect
	haveStatus := false
	for _, kv := range kvs {
		switch kv.Name {
		case keyStatusCode:
			s, err := sizeItem(kv)
			if err != nil {
				return Disconnect{}, err
			}
			d.Status, haveStatus = Status(s), true
		case keyMessage:
			if d.Message, err = stringItem(kv); err != nil {
				return Disconnect{}, err
			}
		}
	}
	if !haveStatus {
		return Disconnect{}, errorf(StatusInvalid, "DISCONNECT without %s", keyStatusCode)
	}
	return d, nil
}

func stringItem(kv KV) (string, error) {
	if kv.Value.Type() != TypeString {
		return "", errorf(StatusInvalid, "%s is %v, want string", kv.Name, kv.Value.Type())
	}
	return kv.Value.Text(), nil
}

// sizeItem reads an integer item that must fit 32 bits. Any integer type
// is accepted, as HAProxy accepts for max-frame-size.
func sizeItem(kv KV) (uint32, error) {
	if !kv.Value.isInt() {
		return 0, errorf(StatusInvalid, "%s is %v, want an integer", kv.Name, kv.Value.Type())
	}
	if kv.Value.Uint() > 1<<32-1 {
		return 0, errorf(StatusInvalid, "%s %d does not fit 32 bits", kv.Name, kv.Value.Uint())
	}
	return uint32(kv.Value.Uint()), nil
}

// splitList splits a comma-separated list, dropping the spaces the spec
// says to ignore and empty entries.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// supportsVersion reports whether a supported-versions list admits SPOP
// 2.0: "when a major version is announced by HAProxy, it means it also
// supports all previous minor versions", so any 2.x does. Entries that are
// not Major.Minor are skipped rather than failing the whole list.
func supportsVersion(list string) bool {
	for _, v := range splitList(list) {
		major, minor, ok := strings.Cut(v, ".")
		if !ok {
			continue
		}
		if _, err := strconv.ParseUint(minor, 10, 16); err != nil {
			continue
		}
		if major == "2" {
			return true
		}
	}
	return false
}
