package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/status"
)

// startSteadyLoad runs `sluice loadgen` against a collector at a modest
// rate for longer than the test needs; the test's end kills it.
func startSteadyLoad(t *testing.T, url string) {
	t.Helper()
	startProc(t, "loadgen", "loadgen", "--url", url, "--rate", "1000", "--duration", "90s", "--report-interval", "-1s")
}

// apiStatus asks a process for GET /api/status.
func apiStatus(t *testing.T, url string) status.Status {
	t.Helper()
	resp, err := http.Get(url + status.PathAPI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s, %v", url, status.PathAPI, resp.Status, err)
	}
	return st
}

// liveStages says whether some stream shows a non-zero rate at each of
// the stages.
func liveStages(st status.Status, stages ...status.Stage) bool {
	for _, s := range st.Streams {
		live := true
		for _, stage := range stages {
			live = live && s.Stages[stage].Rate > 0
		}
		if live {
			return true
		}
	}
	return false
}

// TestStatusPage runs `sluice dev` under load and loads its status page in
// headless Chromium: the DOM that the page's script drew after polling
// /api/status holds a stream's row with non-zero rates into Kafka and into
// ClickHouse. The page's HTML alone has empty tables, so only the script
// can have put them there. Then `sluice top` on the same process shows the
// same stream live, and quits on q.
func TestStatusPage(t *testing.T) {
	_, url := startLimitedDev(t, "512MiB")
	startSteadyLoad(t, url)
	testkit.Eventually(t, 30*time.Second, "live rates at /api/status", func() bool {
		return liveStages(apiStatus(t, url), status.StageReceived, status.StageInKafka, status.StageStored, status.StagePublished)
	})

	checkDevStatus(t, apiStatus(t, url))

	dom := testkit.HeadlessDOM(t, url+"/", 5*time.Second)
	rates := domRates(dom)
	t.Logf("rates the page drew: %v", rates)
	for _, stage := range []string{"received", "in_kafka", "stored", "published"} {
		if rates["iot_telemetry"][stage] <= 0 {
			t.Errorf("the page shows no live %s rate for iot_telemetry (rates %v); DOM:\n%.3000s", stage, rates, dom)
		}
	}
	if !strings.Contains(dom, `class="conn live"`) {
		t.Errorf("the page does not say it is live")
	}
	for _, want := range []string{`data-sink="clickhouse"`, `data-partition="0"`, "of 512.0 MiB"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}

	watchTop(t, []string{"received", "in_kafka", "stored", "published"}, "1 process(es), 0 down", url)
}

// checkDevStatus checks the figures of a `sluice dev --memory-limit
// 512MiB` under load that come from gauges: they prove that the metric
// names the status reads are the ones the process exports.
func checkDevStatus(t *testing.T, st status.Status) {
	t.Helper()
	if st.Role != "all" || st.UptimeSeconds <= 0 || st.WindowSeconds <= 0 {
		t.Errorf("role %q, uptime %v s, window %v s", st.Role, st.UptimeSeconds, st.WindowSeconds)
	}
	if m := st.Memory; m.LimitBytes != 512<<20 || m.GoLimitBytes <= 0 || m.GoUsedBytes <= 0 || m.ResidentBytes <= 0 {
		t.Errorf("memory %+v, want a 512MiB limit and figures in use", m)
	}
	sinks := map[string]status.Sink{}
	for _, s := range st.Sinks {
		sinks[s.Name] = s
	}
	for _, name := range []string{"kafka", "clickhouse", "nats"} {
		if s, ok := sinks[name]; !ok || s.State != status.SinkUp || s.Rate <= 0 {
			t.Errorf("sink %s: %+v, want up and writing", name, s)
		}
	}
	worked := 0
	for _, p := range st.Partitions {
		if _, ok := p.Lag["clickhouse"]; ok {
			if _, ok := p.Lag["nats"]; ok {
				worked++
			}
		}
	}
	if worked == 0 || len(st.Partitions) < 2 {
		t.Errorf("partitions %+v, want each with a lag per sink", st.Partitions)
	}
}

var (
	domRow  = regexp.MustCompile(`(?s)<tr data-stream="([a-z_]+)">(.*?)</tr>`)
	domCell = regexp.MustCompile(`data-stage="([a-z_]+)" data-rate="([^"]+)"`)
)

// domRates reads the streams table of a dumped status page: rate by
// stream and stage.
func domRates(dom string) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, row := range domRow.FindAllStringSubmatch(dom, -1) {
		for _, cell := range domCell.FindAllStringSubmatch(row[2], -1) {
			v, err := strconv.ParseFloat(cell[2], 64)
			if err != nil {
				continue
			}
			if out[row[1]] == nil {
				out[row[1]] = map[string]float64{}
			}
			out[row[1]][cell[1]] = v
		}
	}
	return out
}

// TestTopMergesIngestAndWork runs an ingest and a work process (`sluice
// run`) under load, and `sluice top` on both plus an address where nothing
// listens, in a tmux terminal: one view shows a stream received (by the
// ingest process) and stored (by the worker) at non-zero rates, and the
// third process as down; q quits with status 0. The work-only process
// serves the status page and its own stages too.
func TestTopMergesIngestAndWork(t *testing.T) {
	s := newSplitStack(t, newTestDB(t))
	s.startIngest()
	w := s.startWorker()
	workURL := "http://" + w.httpAddr
	checkWorkOnlyStatus(t, workURL)
	startSteadyLoad(t, s.ingestURL)

	screen := watchTop(t, []string{"received", "stored"}, "connection refused", s.ingestURL, workURL, "http://"+freeAddr(t))
	for _, want := range []string{"3 process(es), 1 down", " ingest ", " work ", "lag clickhouse"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q", want)
		}
	}
}

// watchTop runs `sluice top` on urls in a 160×50 tmux terminal until its
// screen shows iot_telemetry with a non-zero rate at each of the stages
// and the text also, then types q and checks that it exits with status 0.
// It returns the screen.
func watchTop(t *testing.T, stages []string, also string, urls ...string) string {
	t.Helper()
	args := []string{sluiceBin(t), "top"}
	for _, u := range urls {
		args = append(args, "--url", u)
	}
	tm := testkit.StartTmux(t, 160, 50, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		screen := tm.Screen()
		rates := topRates(screen, "iot_telemetry")
		live := strings.Contains(screen, also)
		for _, stage := range stages {
			live = live && rates[stage] > 0
		}
		if live {
			t.Logf("sluice top:\n%s", screen)
			tm.SendKeys("q")
			if rc := tm.WaitExit(10 * time.Second); rc != 0 {
				t.Errorf("sluice top exited with status %d after q", rc)
			}
			return screen
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice top shows no live %v rates (%v) or no %q within 30s:\n%s", stages, rates, also, screen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkWorkOnlyStatus checks that a process without collectors serves the
// page and counts the workers' stages only.
func checkWorkOnlyStatus(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "/status/status.js") {
		t.Errorf("GET / on a work process: %s %.200q", resp.Status, body)
	}
	st := apiStatus(t, url)
	want := []status.Stage{status.StageStored, status.StagePublished, status.StageDeadLettered}
	if st.Role != "work" || !equalStages(st.Stages, want) {
		t.Errorf("work process: role %s, stages %v; want work, %v", st.Role, st.Stages, want)
	}
}

func equalStages(a, b []status.Stage) bool {
	return strings.Join(stageStrings(a), ",") == strings.Join(stageStrings(b), ",")
}

func stageStrings(ss []status.Stage) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// topRates reads one stream's row of the streams table on a `sluice top`
// screen: rate by stage, named by the column titles.
func topRates(screen, stream string) map[string]float64 {
	lines := strings.Split(screen, "\n")
	for i, line := range lines {
		if !strings.Contains(line, " stream ") || !strings.Contains(line, "received") {
			continue
		}
		titles := strings.Fields(strings.ReplaceAll(line, "in kafka", "in_kafka"))
		for _, row := range lines[i+1:] {
			fields := strings.Fields(row)
			if len(fields) != len(titles) || fields[0] != stream {
				continue
			}
			out := map[string]float64{}
			for j := 1; j < len(fields); j++ {
				v, err := strconv.ParseFloat(strings.ReplaceAll(fields[j], ",", ""), 64)
				if err == nil {
					out[titles[j]] = v
				}
			}
			return out
		}
	}
	return nil
}
