package top

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/sluicehq/sluice/status"
)

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":        "http://127.0.0.1:8080",
		"http://h:1/":           "http://h:1",
		"https://h/sluice/":     "https://h/sluice",
		" http://127.0.0.1:80 ": "http://127.0.0.1:80",
	} {
		if got, err := NormalizeURL(in); err != nil || got != want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h", "http://", "::"} {
		if got, err := NormalizeURL(bad); err == nil {
			t.Errorf("NormalizeURL(%q) = %q, want an error", bad, got)
		}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func statusServer(t *testing.T, st status.Status) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != status.PathAPI {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFetchShowsDownProcesses asks a process that answers, one that
// refuses connections, one that hangs and one that is not Sluice: the
// first has its status, the others their reasons, and none holds up the
// poll beyond the timeout.
func TestFetchShowsDownProcesses(t *testing.T) {
	up := statusServer(t, status.Status{Role: "ingest"})
	hang := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); hung.Close() })
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)

	start := time.Now()
	got := Fetch(context.Background(), &http.Client{Timeout: 300 * time.Millisecond},
		[]string{up, "http://" + closedAddr(t), hung.URL, other.URL})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("poll took %s despite a 300ms timeout", took)
	}
	if got[0].Status == nil || got[0].Status.Role != "ingest" || got[0].Err != nil {
		t.Errorf("up: %+v", got[0])
	}
	for i, want := range []string{"", "connection refused", "no answer in time", "HTTP 404"} {
		if i == 0 {
			continue
		}
		if got[i].Status != nil || got[i].Err == nil || !strings.Contains(got[i].Err.Error(), want) {
			t.Errorf("source %d: %+v, want the error %q", i, got[i], want)
		}
	}
}

func update(t *testing.T, m Model, msg tea.Msg) (Model, tea.Cmd) {
	t.Helper()
	next, cmd := m.Update(msg)
	return next.(Model), cmd
}

// TestModelPollsDrawsAndQuits runs the model's loop by hand: the first
// poll's answers are drawn (a live stream with its rate, a process that
// is down), a tick polls again, and q quits.
func TestModelPollsDrawsAndQuits(t *testing.T) {
	st := status.Status{
		Role:    "all",
		Stages:  []status.Stage{status.StageReceived, status.StageStored},
		Streams: []status.Stream{{Name: "iot_telemetry", Stages: map[status.Stage]status.Figure{status.StageReceived: {Rate: 1234.4}, status.StageStored: {Rate: 7.5}}}},
		Sinks:   []status.Sink{{Name: "clickhouse", State: status.SinkFailing, FailingStreams: []string{"iot_telemetry"}}},
	}
	m := New(context.Background(), []string{statusServer(t, st), "http://" + closedAddr(t)}, 10*time.Millisecond, time.Second)
	if !strings.Contains(m.View(), "asking") {
		t.Errorf("before the first answer: %q", m.View())
	}
	msg := m.Init()()
	m, next := update(t, m, msg)
	if next == nil {
		t.Fatal("no tick scheduled after a poll")
	}
	screen := m.View()
	for _, want := range []string{"iot_telemetry", "1,234", "7.50", "failing", "connection refused", "2 process(es), 1 down"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	if _, ok := next().(tickMsg); !ok {
		t.Fatal("the poll's follow-up is not a tick")
	}
	if _, poll := update(t, m, tickMsg{}); poll == nil {
		t.Fatal("a tick does not poll")
	} else if _, ok := poll().(fetchedMsg); !ok {
		t.Fatal("a tick's command does not poll")
	}
	for _, key := range []tea.KeyMsg{{Type: tea.KeyRunes, Runes: []rune("q")}, {Type: tea.KeyCtrlC}} {
		_, cmd := update(t, m, key)
		if cmd == nil {
			t.Fatalf("%s does nothing", key)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", key)
		}
	}
	if _, cmd := update(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x")}); cmd != nil {
		t.Error("x does something")
	}
}

func TestRenderFitsTheTerminal(t *testing.T) {
	var v status.View
	v.Processes = []status.Process{{URL: "http://a", Up: true, Role: "work"}}
	for i := range 40 {
		v.Partitions = append(v.Partitions, status.Partition{Stream: "app_logs", Partition: i, Lag: map[string]float64{"clickhouse": 1500}})
	}
	screen := Render(v, time.Now(), 0, 30)
	if lines := strings.Count(screen, "\n"); lines > 30 {
		t.Errorf("%d lines for a 30-line terminal:\n%s", lines, screen)
	}
	if !strings.Contains(screen, "more partitions") || !strings.Contains(screen, "1,500") {
		t.Errorf("no note of the partitions left out, or no lag:\n%s", screen)
	}
	for _, line := range strings.Split(Render(v, time.Now(), 40, 30), "\n") {
		if w := lipgloss.Width(line); w > 40 {
			t.Errorf("a line of %d columns on a 40-column terminal: %q", w, line)
		}
	}
	if all := Render(v, time.Now(), 0, 0); strings.Contains(all, "more partitions") || !strings.Contains(all, " 39 ") {
		t.Errorf("unknown height should draw every partition:\n%s", all)
	}
}

func TestFormats(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.5: "0.50", 12.34: "12.3", 1234567: "1,234,567", 999.6: "1,000"} {
		if got := rate(v); got != want {
			t.Errorf("rate(%v) = %q, want %q", v, got, want)
		}
	}
}
