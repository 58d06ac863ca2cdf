package spop

import (
	"fmt"
	"net/netip"
)

// KV is one item of a KV-LIST: a HELLO or DISCONNECT item, or a message
// argument. HAProxy sends an argument declared without a name with Name "".
type KV struct {
	Name  string
	Value Value
}

// Message is one SPOE message of a NOTIFY frame: the name of its
// spoe-message section and its args, in their declared order.
type Message struct {
	Name string
	Args []KV
}

// Arg returns the value of the first argument called name.
func (m Message) Arg(name string) (Value, bool) {
	for _, kv := range m.Args {
		if kv.Name == name {
			return kv.Value, true
		}
	}
	return Value{}, false
}

// ActionType is an ACK action's first byte (doc/SPOE.txt 3.4).
type ActionType uint8

// The action types.
const (
	ActionSetVar   ActionType = 1
	ActionUnsetVar ActionType = 2
)

// Scope is the scope of a variable an action sets or unsets.
type Scope uint8

// The variable scopes; HAProxy names them proc, sess, txn, req and res.
const (
	ScopeProc Scope = 0
	ScopeSess Scope = 1
	ScopeTxn  Scope = 2
	ScopeReq  Scope = 3
	ScopeRes  Scope = 4
)

var scopeNames = [...]string{"proc", "sess", "txn", "req", "res"}

// String returns HAProxy's name for s.
func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// Action is one action of an ACK frame. HAProxy prefixes Name with the
// agent's var-prefix (txn.<prefix>.<name>) and, unless "option
// force-set-var", sets only variables its configuration mentions.
type Action struct {
	Type  ActionType
	Scope Scope
	Name  string
	Value Value // SET-VAR only; HAProxy unsets the variable for NULL
}

// SetVar returns a SET-VAR action.
func SetVar(scope Scope, name string, v Value) Action {
	return Action{Type: ActionSetVar, Scope: scope, Name: name, Value: v}
}

// UnsetVar returns an UNSET-VAR action.
func UnsetVar(scope Scope, name string) Action {
	return Action{Type: ActionUnsetVar, Scope: scope, Name: name}
}

// Limits bound what one frame may make the decoders allocate: an argument
// takes as little as 2 bytes on the wire but some 70 in memory, so a frame
// of small items would otherwise cost far more than its size. Zero fields
// take the defaults of DefaultLimits.
type Limits struct {
	MaxMessages int // messages in one NOTIFY
	MaxArgs     int // arguments over all messages of one NOTIFY; actions of one ACK; items of a HELLO
}

// DefaultLimits are generous for a WAF: coraza-spoa's request message has
// 12 arguments and a NOTIFY carries one message per spoe-message of a group.
var DefaultLimits = Limits{MaxMessages: 64, MaxArgs: 1024}

func (l Limits) withDefaults() Limits {
	if l.MaxMessages <= 0 {
		l.MaxMessages = DefaultLimits.MaxMessages
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultLimits.MaxArgs
	}
	return l
}

// AppendKVs appends a KV-LIST.
func AppendKVs(dst []byte, kvs []KV) []byte {
	for _, kv := range kvs {
		dst = appendValue(appendString(dst, kv.Name), kv.Value)
	}
	return dst
}

// AppendMessages appends a LIST-OF-MESSAGES, a NOTIFY's payload.
func AppendMessages(dst []byte, msgs []Message) ([]byte, error) {
	for _, m := range msgs {
		if len(m.Args) > 255 {
			return dst, fmt.Errorf("spop: message %q has %d arguments, the wire allows 255", m.Name, len(m.Args))
		}
		dst = appendString(dst, m.Name)
		dst = AppendKVs(append(dst, byte(len(m.Args))), m.Args)
	}
	return dst, nil
}

// AppendActions appends a LIST-OF-ACTIONS, an ACK's payload.
func AppendActions(dst []byte, acts []Action) ([]byte, error) {
	for _, a := range acts {
		if a.Scope > ScopeRes {
			return dst, fmt.Errorf("spop: action on variable %q: invalid %v", a.Name, a.Scope)
		}
		switch a.Type {
		case ActionSetVar:
			dst = appendString(append(dst, byte(ActionSetVar), 3, byte(a.Scope)), a.Name)
			dst = appendValue(dst, a.Value)
		case ActionUnsetVar:
			dst = appendString(append(dst, byte(ActionUnsetVar), 2, byte(a.Scope)), a.Name)
		default:
			return dst, fmt.Errorf("spop: action on variable %q: unknown action type %d", a.Name, a.Type)
		}
	}
	return dst, nil
}

// AppendNotify appends a NOTIFY frame, length prefix included.
func AppendNotify(dst []byte, streamID, frameID uint64, msgs []Message) ([]byte, error) {
	dst, start := beginFrame(dst, FrameNotify, FlagFin, streamID, frameID)
	dst, err := AppendMessages(dst, msgs)
	if err != nil {
		return dst[:start], err
	}
	return endFrame(dst, start), nil
}

// AppendAck appends an ACK frame, length prefix included.
func AppendAck(dst []byte, streamID, frameID uint64, acts []Action) ([]byte, error) {
	dst, start := beginFrame(dst, FrameAck, FlagFin, streamID, frameID)
	dst, err := AppendActions(dst, acts)
	if err != nil {
		return dst[:start], err
	}
	return endFrame(dst, start), nil
}

// DecodeKVs decodes a KV-LIST of at most lim.MaxArgs items.
func DecodeKVs(payload []byte, lim Limits) ([]KV, error) {
	lim = lim.withDefaults()
	d := decoder{s: string(payload)}
	n, err := d.countKVs(-1, lim.MaxArgs)
	if err != nil {
		return nil, err
	}
	kvs := make([]KV, n)
	d.off = 0
	for i := range kvs {
		kvs[i], _ = d.kv()
	}
	return kvs, nil
}

// DecodeMessages decodes a NOTIFY's LIST-OF-MESSAGES.
//
// It copies the payload once into a string that every name and value then
// shares, and it validates and counts in a first pass, so a frame costs
// three allocations (that string, the messages, all their arguments) and
// the caller's buffer is free for reuse as soon as it returns.
func DecodeMessages(payload []byte, lim Limits) ([]Message, error) {
	lim = lim.withDefaults()
	d := decoder{s: string(payload)}
	nmsg, nargs := 0, 0
	for d.off < len(d.s) {
		if nmsg++; nmsg > lim.MaxMessages {
			return nil, errorf(StatusResource, "more than %d messages in a frame", lim.MaxMessages)
		}
		if _, err := d.str("message name"); err != nil {
			return nil, err
		}
		c, err := d.byte("nb-args")
		if err != nil {
			return nil, err
		}
		if _, err := d.countKVs(int(c), lim.MaxArgs-nargs); err != nil {
			return nil, err
		}
		nargs += int(c)
	}
	msgs := make([]Message, nmsg)
	args := make([]KV, nargs)
	d.off = 0
	for i := range msgs {
		msgs[i].Name, _ = d.str("")
		c, _ := d.byte("")
		msgs[i].Args = args[:c:c]
		for j := range msgs[i].Args {
			msgs[i].Args[j], _ = d.kv()
		}
		args = args[c:]
	}
	return msgs, nil
}

// DecodeActions decodes an ACK's LIST-OF-ACTIONS. Unlike HAProxy, which
// stops at the first action it does not know, it refuses the frame: the
// agent side has no unknown action to tolerate. Like DecodeMessages it
// counts first, so a frame costs two allocations.
func DecodeActions(payload []byte, lim Limits) ([]Action, error) {
	lim = lim.withDefaults()
	d := decoder{s: string(payload)}
	n := 0
	for ; d.off < len(d.s); n++ {
		if n >= lim.MaxArgs {
			return nil, errorf(StatusResource, "more than %d actions in a frame", lim.MaxArgs)
		}
		if _, err := d.action(); err != nil {
			return nil, err
		}
	}
	acts := make([]Action, n)
	d.off = 0
	for i := range acts {
		acts[i], _ = d.action()
	}
	return acts, nil
}

// decoder reads a payload held in one string, so that every name and
// value it returns is a substring: no copy per item, and nothing that a
// later frame can overwrite.
type decoder struct {
	s   string
	off int
}

func (d *decoder) byte(what string) (byte, error) {
	if d.off >= len(d.s) {
		return 0, errorf(StatusInvalid, "truncated %s", what)
	}
	c := d.s[d.off]
	d.off++
	return c, nil
}

func (d *decoder) varint(what string) (uint64, error) {
	v, n := decodeVarint(d.s[d.off:])
	switch {
	case n == 0:
		return 0, errorf(StatusInvalid, "truncated %s", what)
	case n < 0:
		return 0, errorf(StatusInvalid, "%s overflows 64 bits", what)
	}
	d.off += n
	return v, nil
}

// str reads a varint length and that many bytes. The length is checked
// against what is left before it is used, never trusted.
func (d *decoder) str(what string) (string, error) {
	n, err := d.varint(what)
	if err != nil {
		return "", err
	}
	if n > uint64(len(d.s)-d.off) {
		return "", errorf(StatusInvalid, "%s of %d bytes overruns the frame", what, n)
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

func (d *decoder) value() (Value, error) {
	c, err := d.byte("typed data")
	if err != nil {
		return Value{}, err
	}
	t := Type(c & typeMask)
	switch t {
	case TypeNull:
		return Value{}, nil
	case TypeBool:
		if c&flagTrue != 0 {
			return Value{t: TypeBool, n: 1}, nil
		}
		return Value{t: TypeBool}, nil
	case TypeInt32, TypeUint32, TypeInt64, TypeUint64:
		n, err := d.varint(t.String())
		return Value{t: t, n: n}, err
	case TypeIPv4:
		if len(d.s)-d.off < 4 {
			return Value{}, errorf(StatusInvalid, "truncated ipv4")
		}
		var a [4]byte
		d.off += copy(a[:], d.s[d.off:])
		return Value{t: t, ip: netip.AddrFrom4(a)}, nil
	case TypeIPv6:
		if len(d.s)-d.off < 16 {
			return Value{}, errorf(StatusInvalid, "truncated ipv6")
		}
		var a [16]byte
		d.off += copy(a[:], d.s[d.off:])
		return Value{t: t, ip: netip.AddrFrom16(a)}, nil
	case TypeString, TypeBinary:
		s, err := d.str(t.String())
		return Value{t: t, s: s}, err
	}
	return Value{}, errorf(StatusInvalid, "reserved data type %d", t)
}

func (d *decoder) action() (Action, error) {
	t, err := d.byte("action type")
	if err != nil {
		return Action{}, err
	}
	nargs, err := d.byte("nb-args")
	if err != nil {
		return Action{}, err
	}
	want := byte(3)
	switch ActionType(t) {
	case ActionSetVar:
	case ActionUnsetVar:
		want = 2
	default:
		return Action{}, errorf(StatusInvalid, "unknown action type %d", t)
	}
	if nargs != want {
		return Action{}, errorf(StatusInvalid, "%d arguments for action type %d, want %d", nargs, t, want)
	}
	scope, err := d.byte("variable scope")
	if err != nil {
		return Action{}, err
	}
	if Scope(scope) > ScopeRes {
		return Action{}, errorf(StatusInvalid, "unknown variable scope %d", scope)
	}
	a := Action{Type: ActionType(t), Scope: Scope(scope)}
	if a.Name, err = d.str("variable name"); err != nil {
		return Action{}, err
	}
	if a.Type == ActionSetVar {
		if a.Value, err = d.value(); err != nil {
			return Action{}, err
		}
	}
	return a, nil
}

func (d *decoder) kv() (KV, error) {
	name, err := d.str("item name")
	if err != nil {
		return KV{}, err
	}
	v, err := d.value()
	return KV{Name: name, Value: v}, err
}

// countKVs validates a KV-LIST without keeping it: n items, or up to the
// end of the payload when n is -1. More than max items is a resource
// error, the status HAProxy uses for what it will not allocate.
func (d *decoder) countKVs(n, max int) (int, error) {
	if n > max {
		return 0, errorf(StatusResource, "more than %d arguments in a frame", max)
	}
	i := 0
	for ; n < 0 && d.off < len(d.s) || i < n; i++ {
		if n < 0 && i >= max {
			return 0, errorf(StatusResource, "more than %d items in a frame", max)
		}
		if _, err := d.kv(); err != nil {
			return 0, err
		}
	}
	return i, nil
}
