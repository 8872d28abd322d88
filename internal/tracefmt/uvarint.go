package tracefmt

// Uvarint decodes the uvarint at b[p:] and returns it and the offset after
// it, or -1 if p is negative (an earlier error) or the uvarint is truncated
// or overflows a uint64. Passing the offset along lets a caller decode a run
// of uvarints and check for -1 once, at the end.
func Uvarint(b []byte, p int) (uint64, int) {
	if p < 0 {
		return 0, -1
	}
	var v uint64
	for i := 0; i < MaxVarintLen; i++ {
		if p >= len(b) {
			return 0, -1
		}
		c := b[p]
		p++
		if c < 0x80 {
			if i == MaxVarintLen-1 && c > 1 {
				return 0, -1
			}
			return v | uint64(c)<<(7*i), p
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	return 0, -1
}

// SkipUvarint is [Uvarint] without the value, for arguments nobody reads.
func SkipUvarint(b []byte, p int) int {
	if p < 0 {
		return -1
	}
	for i := 0; i < MaxVarintLen; i++ {
		if p >= len(b) {
			return -1
		}
		c := b[p]
		p++
		if c < 0x80 {
			if i == MaxVarintLen-1 && c > 1 {
				return -1
			}
			return p
		}
	}
	return -1
}
