package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// HeadlessDOM loads url in Debian's headless Chromium, lets its scripts run
// for budget of virtual time (timers fire, fetches complete), and returns
// the DOM as the scripts left it. Chromium gets a profile directory of its
// own, logs to a file in the test's temporary directory, and runs in its own
// process group, which is killed when it is done: its helper processes
// (zygote, renderer) never outlive the call.
func HeadlessDOM(t testing.TB, url string, budget time.Duration) string {
	t.Helper()
	bin := LookPath(t, "chromium")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "chromium.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), budget+45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--no-first-run", "--disable-breakpad", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--virtual-time-budget="+strconv.FormatInt(budget.Milliseconds(), 10), "--dump-dom", url)
	// Its caches and crash reports go under the test's directory, not the
	// user's home (which CI may not even set).
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	// The DOM goes to a file, not a pipe: a helper that outlives the
	// browser (a crash handler starts its own session) would hold a pipe
	// open, and Wait with it, for ever.
	domPath := filepath.Join(dir, "dom.html")
	domf, err := os.Create(domPath)
	if err != nil {
		t.Fatal(err)
	}
	defer domf.Close()
	cmd.Stdout, cmd.Stderr = domf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// The group, not only the browser: helpers left behind would hold
		// the profile and the test's temporary directory.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v (log: %s)\n%s", url, err, logPath, tailFile(logPath, 20))
	}
	dom, err := os.ReadFile(domPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(dom)
}
