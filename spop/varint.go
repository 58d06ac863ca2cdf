package spop

import "math/bits"

// AppendVarint appends v in HAProxy's variable-length integer encoding
// (include/haproxy/intops.h encode_varint, the "Peers encoding" of
// doc/SPOE.txt 3.1): values below 240 take one byte; above, the first byte
// carries 4 bits with its high nibble set, then 7 bits a byte, the high bit
// marking that more follow. It is not protobuf's varint: 300 is f0 0b here.
func AppendVarint(dst []byte, v uint64) []byte {
	if v < 240 {
		return append(dst, byte(v))
	}
	dst = append(dst, byte(v)|0xf0)
	v = (v - 240) >> 4
	for v >= 128 {
		dst = append(dst, byte(v)|0x80)
		v = (v - 128) >> 7
	}
	return append(dst, byte(v))
}

// varintLen is the number of bytes AppendVarint writes for v.
func varintLen(v uint64) int {
	if v < 240 {
		return 1
	}
	n := 2
	v = (v - 240) >> 4
	for v >= 128 {
		n++
		v = (v - 128) >> 7
	}
	return n
}

// DecodeVarint decodes the varint at the start of b and returns it with the
// number of bytes it took. n is 0 when b ends inside the varint and -1 when
// the value does not fit in 64 bits; HAProxy's own decoder would let such a
// value wrap silently, a peer sending one is broken or hostile.
func DecodeVarint(b []byte) (v uint64, n int) { return decodeVarint(b) }

// decodeVarint is DecodeVarint for both the frame header ([]byte) and the
// payload, which the decoders read as one string so that values share it.
func decodeVarint[T ~string | ~[]byte](b T) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	v = uint64(b[0])
	if v < 240 {
		return v, 1
	}
	// Each following byte is added at its weight, continuation bit
	// included (that is what the encoder's "- 128" undoes). The sum must
	// not lose bits to the shift or carry out of 64 bits.
	shift := uint(4)
	for i := 1; i < len(b); i++ {
		c := uint64(b[i])
		if shift >= 64 {
			return 0, -1
		}
		term := c << shift
		if term>>shift != c {
			return 0, -1
		}
		var carry uint64
		v, carry = bits.Add64(v, term, 0)
		if carry != 0 {
			return 0, -1
		}
		if c < 128 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}
