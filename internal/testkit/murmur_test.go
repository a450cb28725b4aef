package testkit

import "testing"

func TestJavaMurmur2Vectors(t *testing.T) {
	// From Kafka's UtilsTest.testMurmur2.
	tests := []struct {
		key  string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			// Recover the hash from the partition over 2^31 partitions.
			got := JavaMurmur2Partition([]byte(tt.key), 1<<31)
			if want := int(uint32(tt.want) & 0x7fffffff); got != want {
				t.Errorf("murmur2(%q) & 0x7fffffff = %d, want %d", tt.key, got, want)
			}
		})
	}
}
