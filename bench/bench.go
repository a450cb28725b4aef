// Package bench measures the pipeline as an operator would run it: the
// ingest and work roles as two `sluice run` processes against a Kafka
// broker and a NATS server (embedded in the bench process) and a real
// ClickHouse, driven by loadgen at a fixed rate and at saturation. It
// reports what each role costs per event (CPU, peak resident memory) and
// what producers and analysts see (acknowledged and stored rates,
// acknowledgement and visibility latency).
//
// The broker, NATS and loadgen run inside the bench process, so their CPU
// is not counted against Sluice; ClickHouse is a server of its own.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/devstack"
	"github.com/sluicehq/sluice/internal/hostaddr"
	"github.com/sluicehq/sluice/internal/procstat"
	"github.com/sluicehq/sluice/internal/promscrape"
	"github.com/sluicehq/sluice/loadgen"
)

// Config configures a benchmark. Bin and ClickHouseAddr are required.
type Config struct {
	// Bin is the sluice binary that runs the two roles.
	Bin string
	// ClickHouseAddr is the ClickHouse server (native protocol) the work
	// role writes to, into a fresh database that is dropped afterwards
	// unless Keep.
	ClickHouseAddr string
	// Rate is the fixed rate of the first phase, in events per second.
	Rate float64
	// Duration is how long loadgen sends in each phase.
	Duration time.Duration
	// Drain bounds the wait, after loadgen stops, for the work role to
	// store every acknowledged event.
	Drain time.Duration
	// BatchSize and Concurrency are loadgen's (events per request,
	// requests in flight).
	BatchSize, Concurrency int
	// Saturation adds a phase at loadgen's full speed (rate 0).
	Saturation bool
	// Args are passed to both `sluice run` processes (--memory-limit...).
	Args []string
	// Dir holds the broker's data and the roles' logs; a temporary
	// directory, removed afterwards, when empty.
	Dir string
	// Keep keeps Dir and the ClickHouse database.
	Keep bool
	// ProfileDir, when set, receives a CPU profile of each role in each
	// phase (<phase>-<role>.pprof) and one of what it allocated
	// (<phase>-<role>.allocs.pprof), taken over most of the phase; the
	// roles then run with --pprof.
	ProfileDir string
	// Out receives progress lines.
	Out io.Writer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Run starts the broker, NATS and the two roles, runs the phases and
// returns their results. ctx ends it early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Bin == "" || cfg.ClickHouseAddr == "" {
		return nil, errors.New("bench: the sluice binary and a ClickHouse address are required")
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ProfileDir != "" {
		// Found missing only when the first phase ends, the directory would
		// cost a whole run's profiles.
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: profile directory: %w", err)
		}
	}
	env, err := startEnv(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer env.close(cfg)

	rep := &Report{Machine: machine(), Args: cfg.Args}
	phases := []phaseSpec{{name: fmt.Sprintf("%.0f/s", cfg.Rate), rate: cfg.Rate}}
	if cfg.Saturation {
		phases = append(phases, phaseSpec{name: "saturation", rate: 0})
	}
	for _, ps := range phases {
		fmt.Fprintf(cfg.Out, "bench: phase %s for %v\n", ps.name, cfg.Duration)
		res, err := env.runPhase(ctx, cfg, ps)
		if err != nil {
			return rep, fmt.Errorf("bench: phase %s: %w", ps.name, err)
		}
		rep.Phases = append(rep.Phases, res)
	}
	return rep, nil
}

// env is what a benchmark runs against, and the two roles.
type env struct {
	dir     string
	tmp     bool
	db      string
	kafka   *devstack.Kafka
	nats    *devstack.NATS
	ingest  *role
	work    *role
	client  *http.Client
	started time.Time
	// clickhouse is the local ClickHouse server's pid, or 0 when it is
	// elsewhere or cannot be inspected: its CPU is reported beside the
	// roles', since on a small machine it competes with them.
	clickhouse int
}

// startEnv starts the broker, NATS and both roles, and waits until both
// roles are ready.
func startEnv(ctx context.Context, cfg *Config) (e *env, err error) {
	e = &env{dir: cfg.Dir, client: &http.Client{Timeout: 5 * time.Second}, started: time.Now()}
	if e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		e.tmp = true
	}
	defer func() {
		if err != nil {
			e.close(*cfg)
		}
	}()
	quiet := slog.New(slog.DiscardHandler)
	if e.kafka, err = devstack.StartKafka("127.0.0.1:0", e.dir, false, quiet); err != nil {
		return e, fmt.Errorf("bench: %w", err)
	}
	if e.nats, err = devstack.StartNATS("127.0.0.1:-1", e.dir); err != nil {
		return e, fmt.Errorf("bench: %w", err)
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	e.db = "sluice_bench_" + hex.EncodeToString(id[:])
	common := []string{
		"--kafka-brokers", e.kafka.Addr(), "--nats-url", e.nats.URL(),
		"--clickhouse-addr", cfg.ClickHouseAddr, "--clickhouse-database", e.db,
	}
	if cfg.ProfileDir != "" {
		common = append(common, "--pprof")
	}
	common = append(common, cfg.Args...)
	if e.ingest, err = startRole(ctx, cfg.Bin, "ingest", e.dir, common); err != nil {
		return e, err
	}
	if e.work, err = startRole(ctx, cfg.Bin, "work", e.dir, common); err != nil {
		return e, err
	}
	fmt.Fprintf(cfg.Out, "bench: ingest (pid %d) at %s, work (pid %d) at %s, logs in %s\n",
		e.ingest.pid(), e.ingest.url, e.work.pid(), e.work.url, e.dir)
	e.clickhouse = localServer(cfg.ClickHouseAddr)
	for _, r := range []*role{e.ingest, e.work} {
		if err := r.waitReady(ctx, e.client, time.Minute); err != nil {
			return e, err
		}
	}
	return e, nil
}

// localServer returns the pid of the server listening at addr when addr
// is on this machine, else 0.
func localServer(addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if !hostaddr.Local(host) {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	pid, _ := procstat.ListenerPID(n)
	return pid
}

// close stops the roles, the broker and NATS, and removes what the
// benchmark made unless cfg.Keep.
func (e *env) close(cfg Config) {
	for _, r := range []*role{e.ingest, e.work} {
		if r != nil {
			r.stop(20 * time.Second)
		}
	}
	if e.nats != nil {
		e.nats.Close()
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
	if cfg.Keep {
		fmt.Fprintf(cfg.Out, "bench: kept %s and database %s\n", e.dir, e.db)
		return
	}
	if e.db != "" {
		fmt.Fprintf(cfg.Out, "bench: dropping database %s\n", e.db)
		if err := dropDatabase(cfg.ClickHouseAddr, e.db); err != nil {
			cfg.Logger.Warn("bench: could not drop the benchmark database", "database", e.db, "err", err)
		}
	}
	if e.tmp {
		_ = os.RemoveAll(e.dir)
	}
}

// phaseSpec is one phase: loadgen at rate (0: as fast as acknowledged).
type phaseSpec struct {
	name string
	rate float64
}

// runPhase drives the pipeline for one phase and measures it.
func (e *env) runPhase(ctx context.Context, cfg Config, ps phaseSpec) (Phase, error) {
	before, err := e.snapshot(ctx)
	if err != nil {
		return Phase{}, err
	}
	peaks := newPeakSampler(100*time.Millisecond, e.ingest.pid(), e.work.pid())
	peaks.start(ctx)
	profiled := e.profile(ctx, cfg, ps)
	defer func() {
		if err := profiled(); err != nil {
			cfg.Logger.Warn("bench: CPU profile", "phase", ps.name, "err", err)
		}
	}()
	began := time.Now()
	sum, lerr := loadgen.Run(ctx, loadgen.Config{
		URL: e.ingest.url, Rate: ps.rate, Duration: cfg.Duration,
		BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency, Mix: loadgen.DefaultMix,
		ReportInterval: -1, Logger: slog.New(slog.DiscardHandler),
		AckLog: nil,
	}, nil)
	if lerr != nil && sum.AckedTotal == 0 {
		peaks.stop()
		return Phase{}, fmt.Errorf("loadgen: %w", lerr)
	}
	acked := time.Now()
	stored, err := e.drain(ctx, before, float64(sum.AckedTotal), cfg.Drain)
	peak := peaks.stop()
	if err != nil {
		return Phase{}, err
	}
	after, err := e.snapshot(ctx)
	if err != nil {
		return Phase{}, err
	}
	p := Phase{
		Name: ps.name, TargetRate: ps.rate,
		Acked: sum.AckedTotal, Stored: int64(after.stored - before.stored),
		AckedPerSec: sum.EventsPerSecond, AckP50: sum.Latency.P50, AckP99: sum.Latency.P99,
		StoredPerSec:   (after.stored - before.stored) / stored.Sub(began).Seconds(),
		DrainAfterAcks: stored.Sub(acked),
		VisibleP99:     visible(after.freshness.minus(before.freshness).quantile(0.99)),
		IngestPeakRSS:  peak[e.ingest.pid()], WorkPeakRSS: peak[e.work.pid()],
		Unacked: sum.Unacked, Rejected: sum.Rejected,
	}
	if sum.AckedTotal > 0 {
		p.IngestCPUPerEvent = (after.ingestCPU - before.ingestCPU) / time.Duration(sum.AckedTotal)
	}
	if p.Stored > 0 {
		p.WorkCPUPerEvent = (after.workCPU - before.workCPU) / time.Duration(p.Stored)
	}
	describe(cfg.Out, p, before, after)
	return p, nil
}

// describe prints what a phase's table row does not hold: how the work
// role's lanes read Kafka, and what the processes beside the roles used.
func describe(out io.Writer, p Phase, before, after snapshot) {
	fmt.Fprintf(out, "bench: phase %s: %d acked, %d stored", p.Name, p.Acked, p.Stored)
	if f, d := after.followed-before.followed, after.decided-before.decided; f+d > 0 {
		// Deciding for itself costs the output a full validation per
		// event: the share says how much of that the phase paid.
		fmt.Fprintf(out, "; the output followed the store's verdicts for %.0f%% of events", 100*f/(f+d))
	}
	if k, m := after.kafkaReads-before.kafkaReads, after.storeReads-before.storeReads; m > 0 {
		// Each lane reads every message, from Kafka or from what another
		// lane of its partition fetched: 1 is each message fetched and
		// parsed once, 2 every lane reading Kafka on its own.
		fmt.Fprintf(out, "; the lanes read each message from Kafka %.2f times", k/m)
	}
	fmt.Fprintln(out)
	secs := after.at.Sub(before.at).Seconds()
	fmt.Fprintf(out, "bench: phase %s: beside the roles, the broker, NATS and loadgen used %.2f cores",
		p.Name, (after.benchCPU-before.benchCPU).Seconds()/secs)
	if after.clickhouseCPU > 0 {
		fmt.Fprintf(out, ", ClickHouse %.2f", (after.clickhouseCPU-before.clickhouseCPU).Seconds()/secs)
	}
	fmt.Fprintln(out)
}

// profile starts taking a CPU and an allocation profile of each role over
// most of the phase, when cfg.ProfileDir is set, and returns a function
// that waits for them.
func (e *env) profile(ctx context.Context, cfg Config, ps phaseSpec) (wait func() error) {
	if cfg.ProfileDir == "" {
		return func() error { return nil }
	}
	secs := max(1, int((cfg.Duration - 2*time.Second).Seconds()))
	client := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	name := strings.NewReplacer("/s", "ps", "/", "-", " ", "-").Replace(ps.name)
	var g errgroup.Group
	for _, r := range []*role{e.ingest, e.work} {
		for _, kind := range []string{"profile", "allocs"} {
			file := fmt.Sprintf("%s-%s.pprof", name, r.name)
			if kind == "allocs" {
				file = fmt.Sprintf("%s-%s.allocs.pprof", name, r.name)
			}
			path := filepath.Join(cfg.ProfileDir, file)
			g.Go(func() error { return fetchProfile(ctx, client, r.url, kind, secs, path) })
		}
	}
	return g.Wait
}

// fetchProfile saves a profile of kind ("profile" for CPU, "allocs" for
// what was allocated) over secs seconds from a role's pprof endpoint.
func fetchProfile(ctx context.Context, client *http.Client, url, kind string, secs int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", url, kind, secs), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// drain waits until the work role has stored want events more than at
// before, and returns when it had.
func (e *env) drain(ctx context.Context, before snapshot, want float64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		s, err := e.snapshot(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if s.stored-before.stored >= want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("stored %.0f of %.0f acknowledged events within %v of the end of the load", s.stored-before.stored, want, limit)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// snapshot is the counters a phase is measured by, at one moment.
type snapshot struct {
	at                 time.Time
	ingestCPU, workCPU time.Duration
	stored             float64
	freshness          histogram
	// followed and decided count the events the output checked by the
	// store's verdict and by itself.
	followed, decided float64
	// kafkaReads counts the messages all lanes read from Kafka, and
	// storeReads those the store's lanes read (every message, once).
	kafkaReads, storeReads float64
	// benchCPU is this process's CPU time (the broker, NATS, loadgen),
	// clickhouseCPU the local ClickHouse server's (0 when unknown).
	benchCPU, clickhouseCPU time.Duration
}

func (e *env) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	if s.ingestCPU, err = procstat.CPUTime(e.ingest.pid()); err != nil {
		return s, err
	}
	if s.workCPU, err = procstat.CPUTime(e.work.pid()); err != nil {
		return s, err
	}
	fams, err := promscrape.Get(ctx, e.client, e.work.url+"/metrics")
	if err != nil {
		return s, err
	}
	store := map[string]string{"sink": "clickhouse"}
	s.stored = counterSum(fams, "sluice_sink_rows_total", store)
	s.freshness = histogramSum(fams, "sluice_sink_event_freshness_seconds", store)
	s.followed = counterSum(fams, "sluice_output_checked_total", map[string]string{"by": "store"})
	s.decided = counterSum(fams, "sluice_output_checked_total", map[string]string{"by": "output"})
	s.kafkaReads = counterSum(fams, "sluice_worker_fetched_messages_total", map[string]string{"from": "kafka"})
	s.storeReads = counterSum(fams, "sluice_worker_fetched_messages_total", store)
	if s.benchCPU, err = procstat.SelfCPUTime(); err != nil {
		return s, err
	}
	if e.clickhouse != 0 {
		// A server that went away costs the line its figure, not the run.
		s.clickhouseCPU, _ = procstat.CPUTime(e.clickhouse)
	}
	return s, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// logPath is where a role's output goes.
func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }
