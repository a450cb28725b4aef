package hostaddr

import "testing"

func TestLocal(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9000":     true,
		"127.0.0.2:9000":     true,
		"[::1]:9000":         true,
		"localhost:9000":     true,
		"localhost":          true,
		"::1":                true,
		"10.0.0.5:9000":      false,
		"clickhouse:9000":    false,
		"[2001:db8::1]:9000": false,
		"":                   false,
	} {
		if got := Local(addr); got != want {
			t.Errorf("Local(%q) = %v, want %v", addr, got, want)
		}
	}
}
