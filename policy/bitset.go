package policy

import "math/bits"

// bitset is a set of node indexes. A Result's bitsets may be shorter than
// its node count: one carried over from an earlier, smaller Result (see
// UpdateNodes) holds none of the positions added since, and reads treat
// the missing words as empty. Bitsets are written only while their Result
// is being built.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }

// grown returns a copy of b sized for n positions, for a Result to modify
// a bitset it shares with an earlier one.
func (b bitset) grown(n int) bitset {
	out := newBitset(n)
	copy(out, b)
	return out
}

// with returns b with position i set to v: b itself when it already is,
// else a copy sized for n positions.
func (b bitset) with(i int, v bool, n int) bitset {
	if b.has(i) == v {
		return b
	}
	out := b.grown(n)
	if v {
		out.set(i)
	} else {
		out.clear(i)
	}
	return out
}

// or adds every member of o to b. A nil o is empty.
func (b bitset) or(o bitset) {
	for i := range o {
		b[i] |= o[i]
	}
}

// orAnd adds every member of both x and y to b.
func (b bitset) orAnd(x, y bitset) {
	for i := range min(len(x), len(y)) {
		b[i] |= x[i] & y[i]
	}
}

// each calls f for every member, in increasing order.
func (b bitset) each(f func(int)) {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			f(i*64 + t)
			w &^= 1 << t
		}
	}
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// count returns the number of members.
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
