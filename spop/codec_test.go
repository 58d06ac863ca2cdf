package spop

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// unhex reads hex with spaces, newlines and # comments, so golden frames
// can be written a field per line.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

func TestVarint(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{
		{0, "00"},
		{239, "ef"},
		{240, "f0 00"},     // first two-byte value
		{300, "fc 03"},     // not protobuf's ac 02
		{2287, "ff 7f"},    // last two-byte value
		{2288, "f0 80 00"}, // first three-byte value
		{16380, "fc f0 06"},
		{65535, "ff f0 1e"},
		{264431, "ff ff 7f"},    // last three-byte value
		{264432, "f0 80 80 00"}, // first four-byte value
		{33818863, "ff ff ff 7f"},
		{33818864, "f0 80 80 80 00"}, // first five-byte value, per the spec's table
		{4328786159, "ff ff ff ff 7f"},
	} {
		want := unhex(t, tc.hex)
		if got := AppendVarint(nil, tc.v); !bytes.Equal(got, want) {
			t.Errorf("AppendVarint(%d) = % x, want % x", tc.v, got, want)
		}
		if n := varintLen(tc.v); n != len(want) {
			t.Errorf("varintLen(%d) = %d, want %d", tc.v, n, len(want))
		}
		got, n := DecodeVarint(append(want, 0xaa)) // a byte after it must stay unread
		if got != tc.v || n != len(want) {
			t.Errorf("DecodeVarint(% x) = %d, %d; want %d, %d", want, got, n, tc.v, len(want))
		}
		if _, n := DecodeVarint(want[:len(want)-1]); n != 0 {
			t.Errorf("DecodeVarint(% x), one byte short: n = %d, want 0", want[:len(want)-1], n)
		}
	}
	// The largest values round-trip; one more continuation byte, or a last
	// byte too big for what is left of 64 bits, is an overflow, not a wrap.
	for _, v := range []uint64{math.MaxUint32, math.MaxInt64, math.MaxUint64 - 1, math.MaxUint64} {
		b := AppendVarint(nil, v)
		if got, n := DecodeVarint(b); got != v || n != len(b) {
			t.Errorf("round trip of %d via % x: %d, %d", v, b, got, n)
		}
	}
	max := AppendVarint(nil, math.MaxUint64)
	for _, b := range [][]byte{
		append(append([]byte{}, max[:len(max)-1]...), 0x7f),
		append(append([]byte{}, max[:len(max)-1]...), 0x80, 0x00),
		bytes.Repeat([]byte{0xff}, 20),
	} {
		if _, n := DecodeVarint(b); n != -1 {
			t.Errorf("DecodeVarint(% x): n = %d, want -1 (overflow)", b, n)
		}
	}
}

// The hand-assembled frames below follow doc/SPOE.txt field by field; they
// pin the encoders and decoders to the wire independently of each other.

const goldenHAProxyHello = `
00 00 00 68                               # length 104
01                                        # HAPROXY-HELLO
00 00 00 01                               # flags: FIN
00 00                                     # stream-id 0, frame-id 0
12 737570706f727465642d76657273696f6e73   # "supported-versions"
08 03 322e30                              #   STRING "2.0"
0e 6d61782d6672616d652d73697a65           # "max-frame-size"
03 fc f0 06                               #   UINT32 16380
0c 6361706162696c6974696573               # "capabilities"
08 0a 706970656c696e696e67                #   STRING "pipelining"
0b 6865616c7468636865636b                 # "healthcheck"
11                                        #   BOOL true (type 1, flag 0x10)
09 656e67696e652d6964                     # "engine-id"
08 04 61626364                            #   STRING "abcd"
`

const goldenAgentHello = `
00 00 00 40                               # length 64
65                                        # AGENT-HELLO (101)
00 00 00 01                               # flags: FIN
00 00
07 76657273696f6e                         # "version"
08 03 322e30                              #   STRING "2.0"
0e 6d61782d6672616d652d73697a65           # "max-frame-size"
03 fc f0 06                               #   UINT32 16380
0c 6361706162696c6974696573               # "capabilities"
08 0a 706970656c696e696e67                #   STRING "pipelining"
`

// A coraza-req message as coraza-spoa's example configuration declares it,
// with the optional id; the request is GET /admin?x=1 HTTP/1.1 from
// 192.0.2.7:51234 to [2001:db8::1]:443.
const goldenNotify = `
00 00 00 c2                               # length 194
03                                        # NOTIFY
00 00 00 01                               # flags: FIN
f9 02                                     # stream-id 281: 249 + (2 << 4)
05                                        # frame-id 5
0a 636f72617a612d726571                   # message "coraza-req"
0c                                        # nb-args 12
03 617070    08 06 73616d706c65           # app = STRING "sample"
06 7372632d6970  06 c0000207              # src-ip = IPV4 192.0.2.7
08 7372632d706f7274  04 f2 f3 17          # src-port = INT64 51234: (51234&0xff)|0xf0, ((51234-240)>>4 = 3187)|0x80, (3187-128)>>7
06 6473742d6970  07 20010db8000000000000000000000001  # dst-ip = IPV6
08 6473742d706f7274  04 fb 0c             # dst-port = INT64 443
06 6d6574686f64  08 03 474554             # method = STRING "GET"
04 70617468  08 06 2f61646d696e           # path = STRING "/admin"
05 7175657279  08 03 783d31               # query = STRING "x=1"
07 76657273696f6e  08 03 312e31           # version = STRING "1.1"
07 68656164657273  08 13 486f73743a206578616d706c652e6f72670d0a  # headers = STRING "Host: example.org\r\n"
04 626f6479  00                           # body = NULL (none buffered)
02 6964  08 0c 303030303030303030303031   # id = STRING "000000000001"
`

const goldenAck = `
00 00 00 45                               # length 69
67                                        # ACK (103)
00 00 00 01                               # flags: FIN
f9 02 05                                  # stream-id 281, frame-id 5
01 03 02 06 616374696f6e  08 04 64656e79  # SET-VAR txn "action" STRING "deny"
01 03 02 06 737461747573  04 f3 0a        # SET-VAR txn "status" INT64 403
01 03 02 06 72756c656964  04 f4 f2 ca 02  # SET-VAR txn "ruleid" INT64 942100
01 03 02 04 666c6167  11                  # SET-VAR txn "flag" BOOL true
02 02 01 04 6d61726b                      # UNSET-VAR sess "mark"
`

const goldenDisconnect = `
00 00 00 2f                               # length 47
66                                        # AGENT-DISCONNECT (102)
00 00 00 01 00 00
0b 7374617475732d636f6465  03 03          # status-code = UINT32 3
07 6d657373616765  08 10 6672616d6520697320746f6f20626967  # message = "frame is too big"
`

var goldenRequest = []Message{{Name: "coraza-req", Args: []KV{
	{"app", String("sample")},
	{"src-ip", IP(netip.MustParseAddr("192.0.2.7"))},
	{"src-port", Int64(51234)},
	{"dst-ip", IP(netip.MustParseAddr("2001:db8::1"))},
	{"dst-port", Int64(443)},
	{"method", String("GET")},
	{"path", String("/admin")},
	{"query", String("x=1")},
	{"version", String("1.1")},
	{"headers", String("Host: example.org\r\n")},
	{"body", Null()},
	{"id", String("000000000001")},
}}}

var goldenActions = []Action{
	SetVar(ScopeTxn, "action", String("deny")),
	SetVar(ScopeTxn, "status", Int64(403)),
	SetVar(ScopeTxn, "ruleid", Int64(942100)),
	SetVar(ScopeTxn, "flag", Bool(true)),
	UnsetVar(ScopeSess, "mark"),
}

func TestGoldenFrames(t *testing.T) {
	hello := HAProxyHello{SupportedVersions: "2.0", MaxFrameSize: 16380, Capabilities: []string{"pipelining"}, Healthcheck: true, EngineID: "abcd"}
	agent := AgentHello{Version: "2.0", MaxFrameSize: 16380, Capabilities: []string{"pipelining"}}
	notify, err := AppendNotify(nil, 281, 5, goldenRequest)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := AppendAck(nil, 281, 5, goldenActions)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		golden string
		enc    []byte
		typ    FrameType
		sid    uint64
		fid    uint64
		decode func([]byte) (any, error)
		want   any
	}{
		{"haproxy hello", goldenHAProxyHello, hello.AppendFrame(nil), FrameHAProxyHello, 0, 0,
			func(p []byte) (any, error) { return DecodeHAProxyHello(p) }, hello},
		{"agent hello", goldenAgentHello, agent.AppendFrame(nil), FrameAgentHello, 0, 0,
			func(p []byte) (any, error) { return DecodeAgentHello(p) }, agent},
		{"notify", goldenNotify, notify, FrameNotify, 281, 5,
			func(p []byte) (any, error) { return DecodeMessages(p, Limits{}) }, goldenRequest},
		{"ack", goldenAck, ack, FrameAck, 281, 5,
			func(p []byte) (any, error) { return DecodeActions(p, Limits{}) }, goldenActions},
		{"disconnect", goldenDisconnect, Disconnect{StatusTooBig, "frame is too big"}.AppendFrame(nil, FrameAgentDisconnect), FrameAgentDisconnect, 0, 0,
			func(p []byte) (any, error) { return DecodeDisconnect(p) }, Disconnect{StatusTooBig, "frame is too big"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.golden)
			if !bytes.Equal(tc.enc, want) {
				t.Fatalf("encoded\n% x\nwant\n% x", tc.enc, want)
			}
			f, buf, err := ReadFrame(bytes.NewReader(want), nil, 16380)
			if err != nil {
				t.Fatal(err)
			}
			if len(buf) != len(want)-4 || f.Type != tc.typ || f.Flags != FlagFin || f.StreamID != tc.sid || f.FrameID != tc.fid {
				t.Fatalf("header: %v flags %d sid %d fid %d", f.Type, f.Flags, f.StreamID, f.FrameID)
			}
			got, err := tc.decode(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

// The decoded strings must not share the caller's buffer, which the server
// reuses for the next frame while a handler may still hold the values.
func TestDecodedValuesOutliveTheBuffer(t *testing.T) {
	b := unhex(t, goldenNotify)
	f, _ := DecodeFrame(b[4:])
	msgs, err := DecodeMessages(f.Payload, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if p, _ := msgs[0].Arg("path"); p.Text() != "/admin" || msgs[0].Name != "coraza-req" {
		t.Fatalf("values changed with the buffer: %v %v", msgs[0].Name, p)
	}
}

func TestValues(t *testing.T) {
	v4 := netip.MustParseAddr("10.1.2.3")
	for _, tc := range []struct {
		v    Value
		typ  Type
		i    int64
		u    uint64
		text string
		addr netip.Addr
		str  string
	}{
		{Null(), TypeNull, 0, 0, "", netip.Addr{}, "null"},
		{Value{}, TypeNull, 0, 0, "", netip.Addr{}, "null"},
		{Bool(false), TypeBool, 0, 0, "", netip.Addr{}, "bool(false)"},
		{Int32(-2), TypeInt32, -2, math.MaxUint64 - 1, "", netip.Addr{}, "int32(-2)"},
		{Uint32(7), TypeUint32, 7, 7, "", netip.Addr{}, "uint32(7)"},
		{Int64(-1), TypeInt64, -1, math.MaxUint64, "", netip.Addr{}, "int64(-1)"},
		{Uint64(math.MaxUint64), TypeUint64, -1, math.MaxUint64, "", netip.Addr{}, "uint64(18446744073709551615)"},
		{IP(v4), TypeIPv4, 0, 0, "", v4, "ipv4(10.1.2.3)"},
		{IP(netip.AddrFrom16(v4.As16())), TypeIPv4, 0, 0, "", v4, "ipv4(10.1.2.3)"}, // mapped: sent as IPV4
		{IP(netip.MustParseAddr("fe80::1%eth0")), TypeIPv6, 0, 0, "", netip.MustParseAddr("fe80::1"), "ipv6(fe80::1)"},
		{IP(netip.Addr{}), TypeNull, 0, 0, "", netip.Addr{}, "null"},
		{String("a\"b"), TypeString, 0, 0, "a\"b", netip.Addr{}, `string("a\"b")`},
		{Binary([]byte{0, 0xff}), TypeBinary, 0, 0, "\x00\xff", netip.Addr{}, "binary(00ff)"},
	} {
		if tc.v.Type() != tc.typ || tc.v.Int() != tc.i || tc.v.Uint() != tc.u || tc.v.Text() != tc.text ||
			tc.v.Addr() != tc.addr || tc.v.String() != tc.str {
			t.Errorf("%v: type %v int %d uint %d text %q addr %v", tc.str, tc.v.Type(), tc.v.Int(), tc.v.Uint(), tc.v.Text(), tc.v.Addr())
		}
		// Every value survives the wire.
		kvs, err := DecodeKVs(AppendKVs(nil, []KV{{"k", tc.v}}), Limits{})
		if err != nil || len(kvs) != 1 || !reflect.DeepEqual(kvs[0].Value, tc.v) {
			t.Errorf("%v: round trip %v, %v", tc.str, kvs, err)
		}
	}
	if !Bool(true).Bool() || Int64(1).Bool() || String("x").Bytes()[0] != 'x' || Int64(1).Bytes() != nil {
		t.Error("Bool or Bytes accessors")
	}
}

// Each malformed payload is refused with the status the server will send.
func TestDecodeErrors(t *testing.T) {
	statusOf := func(err error) Status {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is not an *Error", err)
		}
		return e.Status
	}
	msgs := func(h string, lim Limits) error { _, err := DecodeMessages(unhex(t, h), lim); return err }
	acts := func(h string) error { _, err := DecodeActions(unhex(t, h), Limits{}); return err }
	hello := func(h string) error { _, err := DecodeHAProxyHello(unhex(t, h)); return err }
	for _, tc := range []struct {
		name string
		err  error
		want Status
	}{
		{"name overruns", msgs("05 6162", Limits{}), StatusInvalid},
		{"missing nb-args", msgs("01 61", Limits{}), StatusInvalid},
		{"fewer args than nb-args", msgs("01 61 02  01 6b 00", Limits{}), StatusInvalid},
		{"reserved type", msgs("01 61 01  01 6b 0a", Limits{}), StatusInvalid},
		{"truncated ipv6", msgs("01 61 01  01 6b 07 00", Limits{}), StatusInvalid},
		{"overflowing int", msgs("01 61 01  01 6b 04 ffffffffffffffffffffff", Limits{}), StatusInvalid},
		{"string length near 2^64", msgs("01 61 01  01 6b 08 ffffffffffffffffff0f", Limits{}), StatusInvalid},
		{"too many messages", msgs("01 61 00  01 62 00", Limits{MaxMessages: 1}), StatusResource},
		{"too many args", msgs("01 61 02  01 6b 00  01 6c 00", Limits{MaxArgs: 1}), StatusResource},
		{"too many args over messages", msgs("01 61 01  01 6b 00  01 62 01  01 6c 00", Limits{MaxArgs: 1}), StatusResource},
		{"unknown action", acts("03 00"), StatusInvalid},
		{"set-var with 2 args", acts("01 02 02 01 61 00"), StatusInvalid},
		{"bad scope", acts("02 02 05 01 61"), StatusInvalid},
		{"hello without versions", hello("0e 6d61782d6672616d652d73697a65 03 fc f0 06  0c 6361706162696c6974696573 08 00"), StatusNoVersion},
		{"hello without max-frame-size", hello("12 737570706f727465642d76657273696f6e73 08 03 322e30  0c 6361706162696c6974696573 08 00"), StatusNoFrameSize},
		{"hello without capabilities", hello("12 737570706f727465642d76657273696f6e73 08 03 322e30  0e 6d61782d6672616d652d73697a65 03 fc f0 06"), StatusNoCapabilities},
		{"hello with a numeric version", hello("12 737570706f727465642d76657273696f6e73 03 02"), StatusInvalid},
		{"hello with a 64-bit frame size", hello("0e 6d61782d6672616d652d73697a65 05 f0 80 80 80 80 80 80 80 00"), StatusInvalid},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if got := statusOf(tc.err); got != tc.want {
			t.Errorf("%s: status %d (%v), want %d", tc.name, got, tc.err, tc.want)
		}
	}
	// Encoders refuse what the wire cannot say.
	if _, err := AppendMessages(nil, []Message{{Name: "m", Args: make([]KV, 256)}}); err == nil {
		t.Error("256 arguments encoded")
	}
	if _, err := AppendActions(nil, []Action{SetVar(5, "x", Null())}); err == nil {
		t.Error("scope 5 encoded")
	}
}

func TestReadFrameRefusesBeforeAllocating(t *testing.T) {
	// A length of 4 GiB with nothing behind it: refused on the prefix alone.
	_, _, err := ReadFrame(bytes.NewReader(unhex(t, "ff ff ff ff")), nil, 16380)
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusTooBig {
		t.Fatalf("err = %v, want frame too big", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(unhex(t, "00 00 00 10 03 00")), nil, 16380); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(unhex(t, "00 00 00 03 03 00 00")), nil, 16380); !errors.As(err, &e) || e.Status != StatusInvalid {
		t.Fatalf("frame shorter than its header: %v", err)
	}
}

func TestSupportsVersion(t *testing.T) {
	for list, want := range map[string]bool{
		"2.0": true, " 2.0 , 1.5": true, "2.1": true, "1.0,2.0": true,
		"1.0": false, "3.0": false, "": false, "2": false, "2.x": false, "20.0": false,
	} {
		if got := supportsVersion(list); got != want {
			t.Errorf("supportsVersion(%q) = %v", list, got)
		}
	}
}

func TestParseHdrsBin(t *testing.T) {
	hdrs := unhex(t, `
		04 686f7374  0b 6578616d706c652e6f7267   # host: example.org
		01 61  00                                # a: (empty value)
		00 00                                    # end of headers`)
	got, err := ParseHdrsBin(string(hdrs))
	if want := []Header{{"host", "example.org"}, {"a", ""}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseHdrsBin = %v, %v; want %v", got, err, want)
	}
	if got, err := ParseHdrsBin("\x00\x00"); err != nil || len(got) != 0 {
		t.Fatalf("no headers: %v, %v", got, err)
	}
	for _, bad := range []string{"", "\x01a", "\x01a\x00", "\x00\x01a", "\x01a\x00\x00\x00\x01", "\x7fa\x00\x00\x00"} {
		if _, err := ParseHdrsBin(bad); err == nil {
			t.Errorf("ParseHdrsBin(%q) accepted", bad)
		}
	}
}
