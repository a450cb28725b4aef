package compose

// What Sluice really exports, learnt by running it: the collectors
// (`sluice run --role ingest`) and the workers (`--role work`) as the compose
// stack runs them, against an embedded Kafka-protocol broker, embedded NATS,
// a real mosquitto and the test ClickHouse, plus `sluice dev` for what only
// its embedded MQTT broker exports. Every collector gets traffic, and NATS is
// stopped under load, so that the metrics that only appear with their first
// event (an error, a retry) appear too. The dashboard, the alerts and
// docs/metrics.md are checked against these scrapes, and a real Prometheus
// scrapes the same processes (prometheus_run_test.go).

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/testkit"
)

// family is one metric family as scraped: its type, every label name seen on
// its series (le and quantile excluded), and the roles that export it.
type family struct {
	name   string
	help   string
	typ    string // counter, gauge, histogram, summary, untyped
	labels map[string]bool
	roles  map[string]bool // ingest, work, dev
}

// exported is the union of the families scraped from every process.
type exported map[string]*family

func (e exported) add(role string, mfs []*dto.MetricFamily) {
	for _, mf := range mfs {
		f := e[mf.GetName()]
		if f == nil {
			f = &family{name: mf.GetName(), help: mf.GetHelp(), typ: strings.ToLower(mf.GetType().String()), labels: map[string]bool{}, roles: map[string]bool{}}
			e[mf.GetName()] = f
		}
		f.roles[role] = true
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				f.labels[lp.GetName()] = true
			}
		}
	}
}

// series resolves a name as PromQL sees it (a histogram's name_bucket,
// name_sum, name_count) to its family and the labels it carries.
func (e exported) series(name string) (*family, map[string]bool) {
	if f := e[name]; f != nil && f.typ != "histogram" && f.typ != "summary" {
		return f, f.labels
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if f := e[base]; ok && f != nil && (f.typ == "histogram" || f.typ == "summary") {
			labels := copyLabels(f.labels)
			if suffix == "_bucket" {
				labels["le"] = true
			}
			return f, labels
		}
	}
	return nil, nil
}

// pipelineRun is what runPipeline leaves running: the scrapes, and the
// address of each process under the name of the compose service that runs
// it in the stack (sluice-ingest, sluice-worker), for a Prometheus to scrape.
type pipelineRun struct {
	exp   exported
	addrs map[string]string
}

// runPipeline starts the processes, sends every kind of traffic, stops NATS
// under load and scrapes every process. They run until t ends, NATS still
// down. It takes a few seconds.
func runPipeline(t *testing.T) pipelineRun {
	t.Helper()
	bin := sluiceBin(t)
	k := testkit.StartKafka(t)
	natsDir := t.TempDir()
	nats, err := devstack.StartNATS(testkit.FreeAddr(t), natsDir)
	if err != nil {
		t.Fatal(err)
	}
	natsClosed := false
	t.Cleanup(func() {
		if !natsClosed {
			nats.Close()
		}
	})
	mosq := testkit.StartMosquitto(t, "")
	chAddr := testkit.ClickHouseAddr()
	workDB, devDB := testDatabase(t, chAddr), testDatabase(t, chAddr)

	ingestAddr, syslogAddr, relpAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	ingest := testkit.StartSluice(t, bin, "ingest", ingestAddr, "run", "--role", "ingest",
		"--kafka-brokers", k.Brokers[0], "--http-addr", ingestAddr,
		"--syslog-tcp-addr", syslogAddr, "--syslog-udp-addr", syslogAddr, "--relp-addr", relpAddr,
		"--mqtt-broker", mosq.URL, "--mqtt-client-id", "compose-test", "--memory-limit", "256MiB")
	workAddr := testkit.FreeAddr(t)
	work := testkit.StartSluice(t, bin, "work", workAddr, "run", "--role", "work",
		"--kafka-brokers", k.Brokers[0], "--http-addr", workAddr, "--nats-url", nats.URL(),
		"--clickhouse-addr", chAddr, "--clickhouse-database", workDB, "--workers", "2",
		"--batch-linger", "100ms", "--session-timeout", "6s", "--memory-limit", "256MiB")
	devAddr, devMQTT := testkit.FreeAddr(t), testkit.FreeAddr(t)
	dev := testkit.StartSluice(t, bin, "dev", devAddr, "dev", "--data-dir", t.TempDir(),
		"--http-addr", devAddr, "--kafka-addr", testkit.FreeAddr(t), "--nats-addr", testkit.FreeAddr(t),
		"--mqtt-addr", devMQTT, "--syslog-tcp-addr", "", "--syslog-udp-addr", "", "--relp-addr", "",
		"--clickhouse-addr", chAddr, "--clickhouse-database", devDB, "--partitions", "1", "--workers", "1",
		"--memory-limit", "256MiB")

	sendTraffic(t, bin, ingest.URL, syslogAddr, relpAddr, mosq)
	loadgen(t, bin, "--protocol", "mqtt", "--mqtt-broker", "tcp://"+devMQTT, "--events", "200", "--batch-size", "10", "--concurrency", "2")

	// Everything stored, then NATS away under load: the errors and retries
	// of a failing sink.
	workMetrics := testkit.HTTPGatherer(work.URL + "/metrics")
	testkit.Eventually(t, 60*time.Second, "the workers store events", func() bool {
		return testkit.Metric(t, workMetrics, "sluice_sink_rows_total", map[string]string{"sink": "clickhouse"}) >= 2000
	})
	nats.Close()
	natsClosed = true
	loadgen(t, bin, "--url", ingest.URL, "--events", "400", "--rate", "0")
	testkit.Eventually(t, 60*time.Second, "the NATS sink fails", func() bool {
		return testkit.Metric(t, workMetrics, "sluice_sink_errors_total", map[string]string{"sink": "nats"}) > 0 &&
			testkit.Metric(t, workMetrics, "sluice_sink_retries_total", map[string]string{"sink": "nats"}) > 0
	})

	out := exported{}
	for role, p := range map[string]*testkit.SluiceProc{"ingest": ingest, "work": work, "dev": dev} {
		mfs, err := testkit.HTTPGatherer(p.URL + "/metrics").Gather()
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		out.add(role, mfs)
	}
	return pipelineRun{exp: out, addrs: map[string]string{"sluice-ingest": ingestAddr, "sluice-worker": workAddr}}
}

// sendTraffic gives every collector of the ingest process events: HTTP
// (loadgen, plus an invalid event and an unknown stream), syslog over TCP and
// UDP (and a frame too big, for the connection errors), RELP, and MQTT
// through mosquitto.
func sendTraffic(t *testing.T, bin, url, syslogAddr, relpAddr string, mosq *testkit.Mosquitto) {
	t.Helper()
	loadgen(t, bin, "--url", url, "--events", "2000", "--rate", "0", "--batch-size", "100")
	for path, body := range map[string]string{
		"/v1/streams/iot_telemetry/events":  `{"device_id":"","ts":"not a time"}`,
		"/v1/streams/no_such_stream/events": `{}`,
	} {
		resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("POST %s %s: %s, want an error", path, body, resp.Status)
		}
	}

	sendSyslog(t, syslogAddr)
	sendRELP(t, relpAddr)

	mosq.Publish(t, "devices/sensor-7/telemetry", []string{
		fmt.Sprintf(`{"ts":%d,"metrics":{"t":1}}`, time.Now().UnixMilli()),
		fmt.Sprintf(`{"ts":%d,"metrics":{"t":2}}`, time.Now().UnixMilli()),
	})
}

// syslogLine is an RFC 5424 line of app_logs.
func syslogLine(i int) string {
	return fmt.Sprintf("<11>1 %s host checkout 1 - - payment declined %d", time.Now().UTC().Format(time.RFC3339Nano), i)
}

// sendSyslog sends lines over TCP (octet-counted) and UDP, and a frame
// whose octet count is over the maximum, which closes its connection.
func sendSyslog(t *testing.T, syslogAddr string) {
	t.Helper()
	tcp, err := net.Dial("tcp", syslogAddr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		fmt.Fprintf(tcp, "%d %s", len(syslogLine(i)), syslogLine(i))
	}
	tcp.Close()
	bad, err := net.Dial("tcp", syslogAddr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(bad, "99999999999 x") // an octet count past the maximum
	_ = bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = bad.Read(make([]byte, 1)) // until the collector closes it
	bad.Close()
	udp, err := net.Dial("udp", syslogAddr)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		fmt.Fprint(udp, syslogLine(100+i))
	}
	udp.Close()
}

// sendRELP sends frames over a RELP session and reads their answers, then
// a frame that is no RELP, which closes its connection.
func sendRELP(t *testing.T, relpAddr string) {
	t.Helper()
	relp := testkit.OpenRELP(t, relpAddr)
	for i := range 5 {
		if err := relp.Queue("syslog", []byte(syslogLine(200+i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := relp.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = relp.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range 5 {
		if _, err := relp.ReadFrame(); err != nil {
			t.Fatalf("relp: %v", err)
		}
	}
	// A frame that is no RELP: a protocol error, the connection closed.
	if bad, err := testkit.DialRELP(relpAddr); err == nil {
		fmt.Fprint(bad.Conn, "x y z\n")
		_ = bad.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = bad.Conn.Read(make([]byte, 512))
		bad.Conn.Close()
	}
}

// loadgen runs `sluice loadgen` with args to completion.
func loadgen(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"loadgen", "--report-interval", "1h"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sluice loadgen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testDatabase names a ClickHouse database for one process of the test (the
// worker creates it) and drops it when the test ends.
func testDatabase(t *testing.T, addr string) string {
	t.Helper()
	name := fmt.Sprintf("sluice_compose_%d_%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Auth: ch.Auth{Database: "default", Username: "default"}})
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name)
	})
	return name
}

// ---------------------------------------------------------------------------
// What the source declares, for the metrics that no scrape shows because
// nothing in the test makes their first event happen (a gap in a partition,
// a failed fetch).

var (
	fullNameRE  = regexp.MustCompile(`"(sluice_[a-z0-9_]+)"`)
	nsSubNameRE = regexp.MustCompile(`Namespace:\s*"sluice",\s*Subsystem:\s*"([a-z0-9_]+)",\s*Name:\s*"([a-z0-9_]+)"`)
	// A helper that builds options from a name argument: Name: name, with
	// the calls passing the names as their first argument.
	nameParamRE = regexp.MustCompile(`Namespace:\s*"sluice",\s*Subsystem:\s*"([a-z0-9_]+)",\s*Name:\s*[a-z]\w*[,}]`)
	firstArgRE  = regexp.MustCompile(`\b[a-z]\w*\(\s*"([a-z0-9_]+_(?:total|seconds|bytes|open|lines|messages))"`)
)

// declaredMetrics returns the metric names the module's non-test Go files
// that import client_golang declare, as far as three patterns find them:
// full names in string literals, Namespace/Subsystem/Name literals, and
// option helpers whose callers pass the name.
func declaredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "internal/testkit") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(b)
		if !strings.Contains(src, `"github.com/prometheus/client_golang/prometheus"`) {
			return nil
		}
		for _, m := range fullNameRE.FindAllStringSubmatch(src, -1) {
			out[m[1]] = true
		}
		for _, m := range nsSubNameRE.FindAllStringSubmatch(src, -1) {
			out["sluice_"+m[1]+"_"+m[2]] = true
		}
		for _, sub := range nameParamRE.FindAllStringSubmatch(src, -1) {
			for _, m := range firstArgRE.FindAllStringSubmatch(src, -1) {
				out["sluice_"+sub[1]+"_"+m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyLabels copies a set of label names: never nil, for the caller to add
// to.
func copyLabels(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	maps.Copy(out, m)
	return out
}
