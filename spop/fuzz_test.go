package spop

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeFrame: no frame body makes the decoders panic, overrun or
// allocate past their limits; the header re-encodes to the very bytes it
// came from (the varint has one encoding per value); and whatever payload
// decodes, re-encodes to something that decodes to the same values.
func FuzzDecodeFrame(f *testing.F) {
	for _, g := range []string{goldenHAProxyHello, goldenAgentHello, goldenNotify, goldenAck, goldenDisconnect} {
		f.Add(unhex(f, g)[4:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			mustBeProtocolError(t, err)
			return
		}
		if enc := AppendFrame(nil, fr); !bytes.Equal(enc[4:], b) {
			t.Fatalf("header re-encodes to\n% x\nfrom\n% x", enc[4:], b)
		}
		rf, _, err := ReadFrame(bytes.NewReader(AppendFrame(nil, fr)), nil, uint32(len(b)))
		if err != nil || rf.Type != fr.Type || rf.Flags != fr.Flags || rf.StreamID != fr.StreamID || rf.FrameID != fr.FrameID || !bytes.Equal(rf.Payload, fr.Payload) {
			t.Fatalf("ReadFrame: %+v, %v; want %+v", rf, err, fr)
		}
		lim := Limits{MaxMessages: 8, MaxArgs: 32}
		p := fr.Payload

		if msgs, err := DecodeMessages(p, lim); err != nil {
			mustBeProtocolError(t, err)
		} else {
			nargs := 0
			for _, m := range msgs {
				nargs += len(m.Args)
			}
			if len(msgs) > lim.MaxMessages || nargs > lim.MaxArgs {
				t.Fatalf("%d messages, %d arguments past %+v", len(msgs), nargs, lim)
			}
			enc, err := AppendNotify(nil, fr.StreamID, fr.FrameID, msgs)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeMessages(enc[4+len(b)-len(p):], lim)
			if err != nil || !equalMessages(again, msgs) {
				t.Fatalf("messages round trip: %v, %v; want %v", again, err, msgs)
			}
		}

		if acts, err := DecodeActions(p, lim); err != nil {
			mustBeProtocolError(t, err)
		} else {
			if len(acts) > lim.MaxArgs {
				t.Fatalf("%d actions past %+v", len(acts), lim)
			}
			enc, err := AppendAck(nil, fr.StreamID, fr.FrameID, acts)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeActions(enc[4+len(b)-len(p):], lim)
			if err != nil || !(len(acts) == 0 && len(again) == 0 || reflect.DeepEqual(again, acts)) {
				t.Fatalf("actions round trip: %v, %v; want %v", again, err, acts)
			}
		}

		if kvs, err := DecodeKVs(p, lim); err != nil {
			mustBeProtocolError(t, err)
		} else if again, err := DecodeKVs(AppendKVs(nil, kvs), lim); err != nil || !(len(kvs) == 0 && len(again) == 0 || reflect.DeepEqual(again, kvs)) {
			t.Fatalf("KV round trip: %v, %v; want %v", again, err, kvs)
		}

		// The typed payloads: errors carry a status, successes re-encode.
		if h, err := DecodeHAProxyHello(p); err != nil {
			mustBeProtocolError(t, err)
		} else if fr2, _ := DecodeFrame(h.AppendFrame(nil)[4:]); !helloSurvives(t, fr2.Payload, h) {
			t.Fatalf("HAProxy HELLO %+v does not survive re-encoding", h)
		}
		if h, err := DecodeAgentHello(p); err != nil {
			mustBeProtocolError(t, err)
		} else if fr2, _ := DecodeFrame(h.AppendFrame(nil)[4:]); !agentHelloSurvives(fr2.Payload, h) {
			t.Fatalf("agent HELLO %+v does not survive re-encoding", h)
		}
		if d, err := DecodeDisconnect(p); err != nil {
			mustBeProtocolError(t, err)
		} else if fr2, _ := DecodeFrame(d.AppendFrame(nil, FrameAgentDisconnect)[4:]); !disconnectSurvives(fr2.Payload, d) {
			t.Fatalf("DISCONNECT %+v does not survive re-encoding", d)
		}
		ParseHdrsBin(string(p)) // must not panic
	})
}

func mustBeProtocolError(t *testing.T, err error) {
	t.Helper()
	if e, ok := err.(*Error); !ok || e.Status == StatusNormal {
		t.Fatalf("error %v (%T) is not an *Error with a failure status", err, err)
	}
}

// equalMessages compares messages, taking nil and empty argument lists
// as the same.
func equalMessages(a, b []Message) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || len(a[i].Args) != len(b[i].Args) {
			return false
		}
		for j := range a[i].Args {
			if !reflect.DeepEqual(a[i].Args[j], b[i].Args[j]) {
				return false
			}
		}
	}
	return true
}

func helloSurvives(t *testing.T, p []byte, h HAProxyHello) bool {
	again, err := DecodeHAProxyHello(p)
	// Capabilities are re-joined with commas, so compare the split lists;
	// an empty capability list comes back as nil.
	return err == nil && again.SupportedVersions == h.SupportedVersions && again.MaxFrameSize == h.MaxFrameSize &&
		again.Healthcheck == h.Healthcheck && again.EngineID == h.EngineID &&
		(len(h.Capabilities) == 0 && len(again.Capabilities) == 0 || reflect.DeepEqual(again.Capabilities, h.Capabilities))
}

func agentHelloSurvives(p []byte, h AgentHello) bool {
	again, err := DecodeAgentHello(p)
	return err == nil && again.Version == h.Version && again.MaxFrameSize == h.MaxFrameSize &&
		(len(h.Capabilities) == 0 && len(again.Capabilities) == 0 || reflect.DeepEqual(again.Capabilities, h.Capabilities))
}

func disconnectSurvives(p []byte, d Disconnect) bool {
	again, err := DecodeDisconnect(p)
	return err == nil && again == d
}
