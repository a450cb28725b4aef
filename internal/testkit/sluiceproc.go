package testkit

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// SluiceProc is a sluice process (the built binary) that a test started:
// `sluice run` in some role, or `sluice dev`.
type SluiceProc struct {
	Cmd *exec.Cmd
	// URL is http://<its --http-addr>: /readyz, /metrics.
	URL string
	// Log is the file its output goes to; its tail is shown when the test
	// fails.
	Log string

	done chan struct{}
}

// StartSluice runs bin with args (which must include --http-addr httpAddr),
// its output in a log file, and waits until /readyz answers 200 (at most
// 60 s). The process is killed when t ends (tests that check a graceful
// stop call Stop first), and dies with the test binary.
func StartSluice(t testing.TB, bin, name, httpAddr string, args ...string) *SluiceProc {
	t.Helper()
	p := &SluiceProc{URL: "http://" + httpAddr, Log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.Cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s log (%s), last lines:\n%s", name, p.Log, tailFile(p.Log, 30))
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready; last lines of %s:\n%s", name, p.Log, tailFile(p.Log, 30))
		default:
		}
		if resp, err := http.Get(p.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60 s; last lines of %s:\n%s", name, p.Log, tailFile(p.Log, 30))
		}
	}
}

// Kill ends the process at once (SIGKILL) and waits for it.
func (p *SluiceProc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}
