package eventkey

import (
	"fmt"
	"testing"
)

func TestSum(t *testing.T) {
	h := NewHasher()
	seen := make(map[Key]string)
	for i := range 100_000 {
		id := fmt.Sprintf("run-iot_telemetry-%d", i)
		k := h.Sum(id)
		if k != h.Sum(id) {
			t.Fatalf("Sum(%q) is not stable", id)
		}
		if other, dup := seen[k]; dup {
			t.Fatalf("%q and %q have the same key", id, other)
		}
		seen[k] = id
	}
	if NewHasher().Sum("a") == h.Sum("a") {
		t.Error("two hashers gave the same key: seeds are not random")
	}
}
