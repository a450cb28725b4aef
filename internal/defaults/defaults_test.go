package defaults

import (
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	s, n := "", 0
	Set(&s, "x")
	Set(&n, 3)
	if s != "x" || n != 3 {
		t.Errorf("unset fields: %q, %d; want the defaults x, 3", s, n)
	}
	s, n = "y", -1
	Set(&s, "x")
	Set(&n, 3)
	if s != "y" || n != -1 {
		t.Errorf("set fields: %q, %d; want them kept as y, -1", s, n)
	}
}

func TestPositive(t *testing.T) {
	d := []time.Duration{0, -time.Second, time.Minute}
	for i := range d {
		Positive(&d[i], time.Hour)
	}
	if d[0] != time.Hour || d[1] != time.Hour || d[2] != time.Minute {
		t.Errorf("got %v; want [1h 1h 1m]", d)
	}
}
