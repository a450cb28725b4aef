package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Tmux is a terminal program running in a detached tmux session on a
// private server (its own -L socket, no configuration file), so that a
// test can read its screen and type into it without touching anyone's
// tmux. The server is killed when the test ends.
type Tmux struct {
	t      testing.TB
	bin    string
	socket string
	rcPath string
	// Log is where the program's standard error goes.
	Log string
}

var tmuxSessions atomic.Int64

// StartTmux runs argv in a width×height terminal. The program's exit
// status is kept for Exited; its standard error goes to Log.
func StartTmux(t testing.TB, width, height int, argv ...string) *Tmux {
	t.Helper()
	dir := t.TempDir()
	m := &Tmux{
		t:      t,
		bin:    LookPath(t, "tmux"),
		socket: fmt.Sprintf("sluice-test-%d-%d", os.Getpid(), tmuxSessions.Add(1)),
		rcPath: filepath.Join(dir, "exit-status"),
		Log:    filepath.Join(dir, "stderr.log"),
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	// The shell records the exit status: tmux forgets it with the session.
	script := fmt.Sprintf("%s 2>%s; echo $? >%s", strings.Join(quoted, " "), shellQuote(m.Log), shellQuote(m.rcPath))
	m.run("-f", "/dev/null", "new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), "sh", "-c", script)
	t.Cleanup(func() {
		c, cancel := m.cmd("kill-server")
		defer cancel()
		_ = c.Run()
	})
	return m
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// tmuxTimeout bounds one tmux command: a tmux server that stops answering
// fails the test rather than hang it.
const tmuxTimeout = 30 * time.Second

// cmd is a tmux command on the private server; call cancel once it ran.
func (m *Tmux) cmd(args ...string) (c *exec.Cmd, cancel context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), tmuxTimeout)
	c = exec.CommandContext(ctx, m.bin, append([]string{"-L", m.socket}, args...)...)
	// A tmux started from inside another would talk to that one.
	c.Env = append(os.Environ(), "TMUX=")
	// The server it may start must not keep the output pipe, and Wait
	// with it, open.
	c.WaitDelay = 5 * time.Second
	return c, cancel
}

func (m *Tmux) run(args ...string) string {
	m.t.Helper()
	c, cancel := m.cmd(args...)
	defer cancel()
	out, err := c.CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Screen returns what the terminal shows now, as text; empty once the
// program has exited.
func (m *Tmux) Screen() string {
	c, cancel := m.cmd("capture-pane", "-p")
	defer cancel()
	out, err := c.Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// SendKeys types keys (tmux key names: "q", "C-c", "Enter").
func (m *Tmux) SendKeys(keys ...string) {
	m.t.Helper()
	m.run(append([]string{"send-keys"}, keys...)...)
}

// WaitExit waits up to timeout for the program to end and returns its exit
// status, failing the test if it runs on.
func (m *Tmux) WaitExit(timeout time.Duration) int {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(m.rcPath); err == nil && strings.HasSuffix(string(b), "\n") {
			rc, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				m.t.Fatalf("exit status %q: %v", b, err)
			}
			return rc
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the program in tmux did not exit within %s; screen:\n%s", timeout, m.Screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
