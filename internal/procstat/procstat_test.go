package procstat

import (
	"net"
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

// ListenerPID finds this process by a port it listens on, and fails for
// a port it has stopped listening on.
func TestListenerPID(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if pid, err := ListenerPID(port); err != nil || pid != os.Getpid() {
		t.Errorf("ListenerPID(%d) = %d, %v; want %d", port, pid, err, os.Getpid())
	}
	l.Close()
	if pid, err := ListenerPID(port); err == nil {
		t.Errorf("ListenerPID(%d) after close = %d, want an error", port, pid)
	}
}
