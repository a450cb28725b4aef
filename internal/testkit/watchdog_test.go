package testkit

import (
	"bytes"
	"testing"
)

// parkedInTestkit blocks until release is closed: a goroutine whose stack
// names this package.
func parkedInTestkit(started chan<- struct{}, release <-chan struct{}) {
	close(started)
	<-release
}

func TestGoroutinesKeepsThePackagesGoroutines(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	go parkedInTestkit(started, release)
	<-started
	got := Goroutines("github.com/sluicehq/sluice/internal/testkit.")
	if !bytes.Contains(got, []byte("testkit.parkedInTestkit(")) {
		t.Errorf("the parked goroutine is missing from:\n%s", got)
	}
	if other := Goroutines("example.com/nowhere"); len(other) != 0 {
		t.Errorf("a package with no goroutines got:\n%s", other)
	}
}
