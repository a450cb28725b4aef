package testkit

// JavaMurmur2Partition is Kafka's default partitioner for keyed records
// (Utils.murmur2, toPositive, modulo), written out independently of
// kafka-go's so that the test checks compatibility rather than itself.
func JavaMurmur2Partition(key []byte, partitions int) int {
	const m, r = uint32(0x5bd1e995), 24
	n := len(key)
	h := uint32(0x9747b28c) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(key[i]) | uint32(key[i+1])<<8 | uint32(key[i+2])<<16 | uint32(key[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := key[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int(h&0x7fffffff) % partitions
}
