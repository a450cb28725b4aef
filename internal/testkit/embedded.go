package testkit

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// FileLogger returns a logger that writes to name in t's temporary
// directory, at debug level, so that a server a test starts (an embedded
// broker, a collector) logs to a file instead of the test's output. When
// the test fails, the log's last 8 KiB go to t.Log for the post-mortem
// (the directory is gone after the test).
func FileLogger(t testing.TB, name string) *slog.Logger {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.Close()
		if !t.Failed() {
			return
		}
		if b, err := os.ReadFile(path); err == nil {
			t.Logf("last of %s:\n%s", name, b[max(0, len(b)-8<<10):])
		}
	})
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
