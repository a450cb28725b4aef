package testkit

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// Watchdog ends a test binary shortly before its -test.timeout would, and
// first writes to w the stacks of the goroutines in the package's own code
// (those Goroutines(prefix) returns), with how long each has waited.
//
// Why: when go test's timeout fires, it prints every goroutine (thousands
// with embedded brokers and servers), and a CI log that keeps only its tail
// shows a broker's idle goroutines rather than the test that hung. The
// test's own goroutines name it and the line it waits on.
//
// Call it from TestMain after flag.Parse; call the returned stop once the
// tests have run. A binary without a timeout (-timeout 0), or with one under
// two minutes, gets no watchdog.
func Watchdog(w io.Writer, prefix string) (stop func()) {
	timeout := time.Duration(0)
	if f := flag.Lookup("test.timeout"); f != nil {
		timeout, _ = time.ParseDuration(f.Value.String())
	}
	if timeout < 2*time.Minute {
		return func() {}
	}
	lead := min(timeout/10, time.Minute)
	t := time.AfterFunc(timeout-lead, func() {
		fmt.Fprintf(w, "\nwatchdog: tests still running %s before the %s timeout; the goroutines in %s:\n\n", lead, timeout, prefix)
		w.Write(Goroutines(prefix))
		fmt.Fprintf(w, "watchdog: ending the test binary before its timeout (the stacks above say where it waits)\n")
		os.Exit(2)
	})
	return func() { t.Stop() }
}

// Goroutines returns the stacks of all goroutines with a frame containing
// prefix ("example.com/mod/pkg." for one package's functions,
// "example.com/mod/" for a module's), separated by blank lines as
// runtime.Stack writes them.
func Goroutines(prefix string) []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out bytes.Buffer
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(prefix)) {
			out.Write(g)
			out.WriteString("\n\n")
		}
	}
	return out.Bytes()
}
