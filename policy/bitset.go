package policy

import "math/bits"

// bitset is a fixed-size set of node indexes.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }

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
