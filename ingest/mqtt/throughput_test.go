package mqtt

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

// TestThroughput measures the MQTT collector as deployed: the sluice binary
// (`sluice run --role ingest --mqtt-broker`, from $SLUICE_BIN) between
// Debian's mosquitto, fed by four `mosquitto_pub -q 1 -l` devices, and an
// embedded Kafka run by the test, all on this machine. It reports messages/s
// and events/s into Kafka (acks=all) and the collector's peak RSS. It runs
// only with SLUICE_MQTT_BENCH=1:
//
//	go build -o /tmp/sluice ./cmd/sluice
//	SLUICE_MQTT_BENCH=1 SLUICE_BIN=/tmp/sluice go test ./ingest/mqtt -run Throughput -v
//
// SLUICE_MQTT_BENCH_MESSAGES sets the messages per run (default 200,000;
// at 75,000 lines per mosquitto_pub -l (50,000 work), mosquitto 2.0.11
// disconnects the publishers "due to out of memory" without Sluice in the
// path, and the run stalls);
// SLUICE_MQTT_BENCH_ARGS adds flags to the collector's command line;
// SLUICE_MQTT_BENCH_PROFILE=FILE saves a 10 s CPU profile of the collector
// taken mid-run.
func TestThroughput(t *testing.T) {
	bin := testkit.BenchBinary(t, "SLUICE_MQTT_BENCH")
	total := testkit.EnvInt(t, "SLUICE_MQTT_BENCH_MESSAGES", 200_000)
	for _, perMessage := range []int{1, 10} {
		t.Run(fmt.Sprintf("events_per_message=%d", perMessage), func(t *testing.T) {
			msgs := total
			if perMessage > 1 {
				msgs = total / 4
			}
			benchOnce(t, bin, msgs, perMessage)
		})
	}
}

func benchOnce(t *testing.T, bin string, msgs, perMessage int) {
	k := testkit.StartKafka(t)
	m := testkit.StartMosquitto(t, "")
	args := append([]string{"--mqtt-broker", m.URL, "--mqtt-client-id", "sluice-bench"},
		strings.Fields(os.Getenv("SLUICE_MQTT_BENCH_ARGS"))...)
	c := testkit.StartCollector(t, bin, k, args...)
	time.Sleep(time.Second) // subscribed

	const publishers = 4
	events := msgs * perMessage
	var wg sync.WaitGroup
	start := time.Now()
	for p := range publishers {
		pub := m.PublishCmd(t, fmt.Sprintf("devices/bench-%d/telemetry", p), "")
		in, err := pub.Cmd().StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Cmd().Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			writeLines(in, p, msgs/publishers, perMessage)
			if err := pub.Cmd().Wait(); err != nil {
				t.Errorf("mosquitto_pub %d: %v (mosquitto log: %s)", p, err, m.LogPath)
			}
		})
	}
	if os.Getenv("SLUICE_MQTT_BENCH_METRICS") != "" {
		wg.Go(func() { time.Sleep(3 * time.Second); t.Log(scrape(t, c.URL+"/metrics")) })
	}
	if p := os.Getenv("SLUICE_MQTT_BENCH_PROFILE"); p != "" {
		wg.Go(func() { c.SaveProfile(t, p) })
	}
	want := int64(msgs / publishers * publishers * perMessage)
	_, got := k.WaitTopicSize(t, testkit.StreamTopic("iot_telemetry"), want, 5*time.Minute)
	elapsed := time.Since(start)
	wg.Wait()
	if got < want {
		t.Fatalf("%d of %d events in Kafka after 5 minutes", got, want)
	}
	secs := elapsed.Seconds()
	t.Logf("%d messages x %d events, 4 publishers: %.1f s from the first publish; %.0f messages/s, %.0f events/s into Kafka; collector peak RSS %s",
		msgs, perMessage, secs, float64(msgs)/secs, float64(events)/secs, c.PeakRSS())
}

// writeLines writes n payloads of perMessage events (NDJSON is not
// possible on one mosquitto_pub -l line, so several events are a JSON
// array) and closes w.
func writeLines(w io.WriteCloser, publisher, n, perMessage int) {
	defer w.Close()
	bw := bufio.NewWriterSize(w, 1<<16)
	for i := range n {
		if perMessage > 1 {
			bw.WriteByte('[')
		}
		for e := range perMessage {
			if e > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `{"ts":"2026-11-24T10:00:00.123Z","metrics":{"temperature":%d.5,"humidity":%d},"tags":{"site":"plant-%d"}}`, i, e, publisher)
		}
		if perMessage > 1 {
			bw.WriteByte(']')
		}
		bw.WriteByte('\n')
	}
	_ = bw.Flush()
}

// scrape returns the collector's sluice_mqtt and produce metrics.
func scrape(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if (strings.HasPrefix(l, "sluice_mqtt") || strings.Contains(l, "produce")) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
