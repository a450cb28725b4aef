package syslog

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/procstat"
)

// BenchmarkTCP streams octet-counted RFC 5424 lines over
// SYSLOG_BENCH_CONNS connections (default 4) into the collector, whose
// gate writes to the embedded broker with acks=all, and reports lines/s
// from the first byte sent to the last line acknowledged by Kafka, and
// the process's peak RSS (broker included: it holds the topics in memory).
//
//	go test -run '^$' -bench BenchmarkTCP -benchtime 1000000x ./ingest/syslog
func BenchmarkTCP(b *testing.B) {
	conns := 4
	if v, err := strconv.Atoi(os.Getenv("SYSLOG_BENCH_CONNS")); err == nil && v > 0 {
		conns = v
	}
	cfg := Config{TCPAddr: "127.0.0.1:0", DeriveIDs: true}
	if v, err := strconv.Atoi(os.Getenv("SYSLOG_BENCH_BATCH")); err == nil {
		cfg.MaxBatchLines = v
	}
	r := startRig(b, cfg)
	per := b.N / conns
	total := per * conns
	// Lines are made before the clock starts, so that the senders, which
	// share the machine with the collector and the broker, cost little.
	const chunkLines = 10_000
	// Several services, as on a real log host: the service is the
	// partition key, so one service alone is one partition's throughput.
	services := []string{"checkout"}
	if os.Getenv("SYSLOG_BENCH_ONE_SERVICE") == "" {
		services = []string{"checkout", "cart", "search", "auth", "billing", "shipping", "catalog", "gateway"}
	}
	chunks := make([][]byte, conns)
	for c := range chunks {
		var buf bytes.Buffer
		for i := range min(per, chunkLines) {
			msg := fmt.Sprintf(`<14>1 2026-11-30T14:00:00.%06dZ web-%d %s %d - [req@32473 id="%d"] payment declined for order A-%d`,
				i, c, services[i%len(services)], 4000+c, i, i)
			fmt.Fprintf(&buf, "%d %s", len(msg), msg)
		}
		chunks[c] = buf.Bytes()
	}
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	cpu0, _ := procstat.SelfCPUTime()
	for c := range conns {
		conn, err := net.Dial("tcp", r.c.TCPAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer conn.Close()
			for sent := 0; sent < per; sent += chunkLines {
				chunk := chunks[c]
				if left := per - sent; left < chunkLines {
					chunk = chunk[:offsetOfLine(chunk, left)]
				}
				if _, err := conn.Write(chunk); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5*time.Minute + time.Duration(total/10_000)*time.Second)
	for r.accepted(b) < float64(total) {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %d lines accepted", r.accepted(b), total)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lines/s")
	// CPU per line (whole process: collector, gate, kafka-go, the embedded
	// broker and the senders) does not depend on what else the machine
	// runs, unlike lines/s: 2 cores / this = the CPU-bound ceiling.
	cpu1, _ := procstat.SelfCPUTime()
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(total), "cpu-µs/line")
	if commits := histogramCount(b, r.reg, "sluice_ingest_produce_duration_seconds"); commits > 0 {
		b.ReportMetric(float64(total)/commits, "lines/commit")
		b.ReportMetric(histogramSum(b, r.reg, "sluice_ingest_produce_duration_seconds")/commits*1000, "ms/commit")
	}
	if hwm := peakRSS(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peakRSS-MiB")
	}
}

// peakRSS reads VmHWM from /proc/self/status, in bytes; 0 when unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// offsetOfLine is where the n-th octet-counted frame of chunk starts.
func offsetOfLine(chunk []byte, n int) int {
	off := 0
	for range n {
		sp := bytes.IndexByte(chunk[off:], ' ')
		size, _ := strconv.Atoi(string(chunk[off : off+sp]))
		off += sp + 1 + size
	}
	return off
}

func histogramCount(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	var n float64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return n
}

func histogramSum(t testing.TB, reg prometheus.Gatherer, name string) float64 {
	var n float64
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return n
}

// BenchmarkToEvent is the mapping alone, per format.
func BenchmarkToEvent(b *testing.B) {
	for name, line := range map[string]string{
		"rfc5424": `<14>1 2026-11-30T14:00:00.123456Z web-1 checkout 4000 - [req@32473 id="17"] payment declined for order A-17`,
		"rfc3164": `<14>Nov 30 14:00:00 web-1 checkout[4000]: payment declined for order A-17`,
	} {
		b.Run(name, func(b *testing.B) {
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ToEvent([]byte(line), now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
