package procstat

import (
	"os"
	"testing"
	"time"
)

// The figures come from /proc: this process has used some CPU and holds
// some memory, and a field /proc does not have is an error.
func TestFigures(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	cpu, err := CPUTime(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("CPUTime = %v, %v", cpu, err)
	}
	n, err := StatusBytes(os.Getpid(), "VmRSS")
	if err != nil || n < 1<<20 {
		t.Errorf("VmRSS = %d, %v", n, err)
	}
	if _, err := StatusBytes(os.Getpid(), "VmNothing"); err == nil {
		t.Error("StatusBytes of a field /proc lacks: no error")
	}
}
