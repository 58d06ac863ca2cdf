package spop

import (
	"encoding/hex"
	"net/netip"
	"strconv"
)

// Type is the type of a typed value: the low 4 bits of its first byte
// (doc/SPOE.txt 3.1). The high 4 bits are flags, used only by BOOL.
type Type uint8

// The types of doc/SPOE.txt 3.1; 10 to 15 are reserved and refused.
const (
	TypeNull   Type = 0
	TypeBool   Type = 1
	TypeInt32  Type = 2
	TypeUint32 Type = 3
	TypeInt64  Type = 4
	TypeUint64 Type = 5
	TypeIPv4   Type = 6
	TypeIPv6   Type = 7
	TypeString Type = 8
	TypeBinary Type = 9
)

const (
	typeMask = 0x0f
	flagTrue = 0x10 // the BOOL's value, bit 0 of the flags nibble
)

var typeNames = [...]string{"null", "bool", "int32", "uint32", "int64", "uint64", "ipv4", "ipv6", "string", "binary"}

// String returns the type's name as the spec spells it, in lower case.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Value is one typed value: a message argument, a HELLO item, a variable an
// ACK sets. The zero Value is NULL, which is what HAProxy sends for a sample
// it could not fetch.
//
// A decoded STRING or BINARY shares the memory of the frame it came from
// (one string per frame, never reused), so keeping it is safe but keeps the
// whole frame alive; clone it (strings.Clone) to keep a small part long.
type Value struct {
	t  Type
	n  uint64     // BOOL 0 or 1; integers as their 64-bit pattern
	s  string     // STRING and BINARY contents
	ip netip.Addr // IPV4 and IPV6
}

// Null returns the NULL value.
func Null() Value { return Value{} }

// Bool returns a BOOL.
func Bool(b bool) Value {
	if b {
		return Value{t: TypeBool, n: 1}
	}
	return Value{t: TypeBool}
}

// Int32 returns an INT32. Negative values are sent sign-extended to 64 bits,
// as HAProxy does.
func Int32(i int32) Value { return Value{t: TypeInt32, n: uint64(int64(i))} }

// Uint32 returns a UINT32.
func Uint32(u uint32) Value { return Value{t: TypeUint32, n: uint64(u)} }

// Int64 returns an INT64, the type HAProxy gives every integer sample.
func Int64(i int64) Value { return Value{t: TypeInt64, n: uint64(i)} }

// Uint64 returns a UINT64.
func Uint64(u uint64) Value { return Value{t: TypeUint64, n: u} }

// IP returns an IPV4 for an IPv4 address (IPv4-mapped IPv6 included, which
// is how HAProxy would have sent it) and an IPV6 otherwise. A zone is
// dropped: the wire has no room for it. The invalid Addr gives NULL.
func IP(a netip.Addr) Value {
	switch {
	case !a.IsValid():
		return Value{}
	case a.Is4() || a.Is4In6():
		return Value{t: TypeIPv4, ip: a.Unmap()}
	default:
		return Value{t: TypeIPv6, ip: a.WithZone("")}
	}
}

// String returns a STRING.
func String(s string) Value { return Value{t: TypeString, s: s} }

// Binary returns a BINARY holding a copy of b.
func Binary(b []byte) Value { return Value{t: TypeBinary, s: string(b)} }

// Type returns v's type.
func (v Value) Type() Type { return v.t }

// IsNull reports whether v is NULL.
func (v Value) IsNull() bool { return v.t == TypeNull }

// Bool returns a BOOL's value; false for any other type.
func (v Value) Bool() bool { return v.t == TypeBool && v.n != 0 }

// Int returns an integer's value as int64 (a UINT64 above 2^63-1 wraps, as
// HAProxy's own conversion does); 0 for any other type.
func (v Value) Int() int64 {
	if v.isInt() {
		return int64(v.n)
	}
	return 0
}

// Uint returns an integer's 64-bit pattern as uint64; 0 for any other type.
// HAProxy sends unsigned samples as INT64 from their bit pattern, so this is
// the right reading of src_port or a body size whatever the declared type.
func (v Value) Uint() uint64 {
	if v.isInt() {
		return v.n
	}
	return 0
}

func (v Value) isInt() bool { return v.t >= TypeInt32 && v.t <= TypeUint64 }

// Addr returns an IPV4's or IPV6's address; the invalid Addr otherwise.
func (v Value) Addr() netip.Addr { return v.ip }

// Text returns a STRING's or BINARY's contents without copying; "" for any
// other type. Go strings may hold any bytes, so BINARY is read the same way.
func (v Value) Text() string {
	if v.t == TypeString || v.t == TypeBinary {
		return v.s
	}
	return ""
}

// Bytes returns a copy of a STRING's or BINARY's contents; nil otherwise.
func (v Value) Bytes() []byte {
	if v.t == TypeString || v.t == TypeBinary {
		return []byte(v.s)
	}
	return nil
}

// String formats v for logs and test failures, e.g. int64(5), string("a").
// Use Text for a STRING's contents.
func (v Value) String() string {
	switch v.t {
	case TypeNull:
		return "null"
	case TypeBool:
		return "bool(" + strconv.FormatBool(v.Bool()) + ")"
	case TypeInt32, TypeInt64:
		return v.t.String() + "(" + strconv.FormatInt(int64(v.n), 10) + ")"
	case TypeUint32, TypeUint64:
		return v.t.String() + "(" + strconv.FormatUint(v.n, 10) + ")"
	case TypeIPv4, TypeIPv6:
		return v.t.String() + "(" + v.ip.String() + ")"
	case TypeString:
		return "string(" + strconv.Quote(v.s) + ")"
	case TypeBinary:
		return "binary(" + hex.EncodeToString([]byte(v.s)) + ")"
	}
	return v.t.String()
}

// appendValue appends v's typed-data encoding.
func appendValue(dst []byte, v Value) []byte {
	switch v.t {
	case TypeBool:
		if v.n != 0 {
			return append(dst, byte(TypeBool)|flagTrue)
		}
		return append(dst, byte(TypeBool))
	case TypeInt32, TypeUint32, TypeInt64, TypeUint64:
		return AppendVarint(append(dst, byte(v.t)), v.n)
	case TypeIPv4:
		a := v.ip.As4()
		return append(append(dst, byte(TypeIPv4)), a[:]...)
	case TypeIPv6:
		a := v.ip.As16()
		return append(append(dst, byte(TypeIPv6)), a[:]...)
	case TypeString, TypeBinary:
		return appendString(append(dst, byte(v.t)), v.s)
	}
	return append(dst, byte(TypeNull))
}

// appendString appends a varint length and the bytes: the encoding of names
// and of STRING and BINARY contents.
func appendString(dst []byte, s string) []byte {
	return append(AppendVarint(dst, uint64(len(s))), s...)
}
