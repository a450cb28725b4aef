// Package eventkey turns event_ids into fixed-size keys for the in-memory
// sets that hold millions of them: the workers' dedupe window and the
// reconciliation of `sluice verify`.
package eventkey

import "hash/maphash"

// Key is a 128-bit hash standing in for an event_id. A collision would make
// the dedupe window drop a distinct event, so 64 bits over millions of ids
// is too thin; at 128 bits the odds (n²/2¹²⁹) are nil for any real stream,
// and a key costs 16 bytes where an event_id costs up to 128 plus a header.
type Key [2]uint64

// Hasher turns event_ids into Keys. Its seeds are random: keys never leave
// the process, and random seeds leave nobody a way to craft colliding ids.
type Hasher struct {
	a, b maphash.Seed
}

// NewHasher returns a Hasher with fresh seeds.
func NewHasher() Hasher { return Hasher{a: maphash.MakeSeed(), b: maphash.MakeSeed()} }

// Sum returns id's key. Keys are comparable only between ids hashed by the
// same Hasher.
func (h Hasher) Sum(id string) Key {
	return Key{maphash.String(h.a, id), maphash.String(h.b, id)}
}
