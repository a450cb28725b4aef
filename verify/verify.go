// Package verify reconciles Kafka with ClickHouse: per stream and per
// partition, it reads every event Kafka holds and every row ClickHouse
// holds, and reports the events that are missing, duplicated, or present in
// ClickHouse without being in Kafka. It is the proof of Sluice's
// exactly-once delivery.
//
// What counts, for one partition of one stream's topic:
//
//   - Kafka is read from its earliest offset to the high watermark captured
//     when the run starts. Each message is decoded as the workers decode it.
//     Its event_id is the identity of the event: a producer's retry can put
//     one event at two offsets, and ClickHouse must still hold it once.
//   - The events that should be in ClickHouse are the distinct event_ids of
//     the partition, less those the dead-letter topic accounts for (by
//     event_id, or by topic, partition and offset for a message that does
//     not decode). A dead letter only excuses an absence: an event that is
//     both dead-lettered and stored counts as stored.
//   - ClickHouse rows at offsets beyond the watermark are not checked: the
//     pipeline may still be writing them.
//
// Verify is exact when the pipeline is idle. While it runs, an event the
// workers have not delivered yet counts as missing; Config.Wait re-checks
// missing events until they arrive or the wait runs out.
//
// Memory: partitions are verified one after another, each as a map of
// 128-bit hashes of event_ids (about 30 bytes per event) rather than of the
// event_ids themselves. Measured: 10M events in one partition, 555 MiB peak
// RSS for the whole `sluice verify` process, at 400k events/s on 2 cores.
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/eventkey"
	"github.com/sluicehq/sluice/internal/defaults"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
	"github.com/sluicehq/sluice/schemas"
	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// Defaults for Config's zero values.
const (
	DefaultExamples     = 10
	DefaultPollInterval = time.Second
	DefaultKafkaTimeout = 10 * time.Second
)

// Config says what to reconcile.
type Config struct {
	// Brokers are Kafka bootstrap addresses, host:port.
	Brokers []string
	// Kafka is the TLS and SASL of the connections; zero is plaintext.
	Kafka kafkaconn.Security
	// TopicPrefix names the topics: <prefix><stream> and <prefix>dlq.
	// Empty means kafkatopic.DefaultPrefix.
	TopicPrefix string
	// ClickHouse locates the tables; only Addr, Database, Username,
	// Password and DialTimeout are used.
	ClickHouse clickhouse.Options
	// Streams are the streams to verify, in report order.
	Streams []*schemas.Stream
	// Wait is how long to keep re-checking missing events before they count
	// as missing, for a pipeline that is still delivering. Zero checks once.
	Wait time.Duration
	// PollInterval is the pause between re-checks while waiting.
	PollInterval time.Duration
	// Examples is how many event_ids to show per stream for each of
	// missing, duplicated and unexpected. Zero means DefaultExamples;
	// negative shows none.
	Examples int
	// Decoders is how many goroutines decode messages; zero means one per
	// CPU.
	Decoders int
	// KafkaTimeout bounds connecting to Kafka and each request.
	KafkaTimeout time.Duration
	// Logger receives debug information; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if len(c.Brokers) == 0 {
		return c, errors.New("verify: no Kafka brokers")
	}
	if len(c.Streams) == 0 {
		return c, errors.New("verify: no streams")
	}
	defaults.Set(&c.TopicPrefix, kafkatopic.DefaultPrefix)
	defaults.Set(&c.ClickHouse.Database, clickhouse.DefaultDatabase)
	defaults.Positive(&c.PollInterval, DefaultPollInterval)
	switch {
	case c.Examples == 0:
		c.Examples = DefaultExamples
	case c.Examples < 0:
		c.Examples = 0 // none asked for
	}
	defaults.Positive(&c.Decoders, runtime.GOMAXPROCS(0))
	defaults.Positive(&c.KafkaTimeout, DefaultKafkaTimeout)
	defaults.Set(&c.Logger, slog.Default())
	return c, nil
}

// checkKafkaLogin connects once, so that a refused login or certificate
// is reported as such (one line naming the flag to check) rather than as a
// failed metadata request. Other failures are left to the requests that
// follow, which say what they were doing.
func checkKafkaLogin(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.KafkaTimeout)
	defer cancel()
	if err := cfg.Kafka.Ping(ctx, cfg.Brokers); kafkaconn.IsPermanent(err) {
		return err
	}
	return nil
}

// Run reconciles Kafka with ClickHouse and reports what differs. progress,
// when not nil, receives a line a second about long steps. An error means
// the check could not be completed (Kafka or ClickHouse unreachable, a
// partition truncated while being read); discrepancies are not errors but
// the content of the report: see Report.Clean.
func Run(ctx context.Context, cfg Config, progress io.Writer) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	start := time.Now()
	chr, err := openClickHouse(ctx, cfg.ClickHouse)
	if err != nil {
		return Report{}, err
	}
	defer chr.Close()
	if err := checkKafkaLogin(ctx, cfg); err != nil {
		return Report{}, err
	}
	kr := newKafkaReader(cfg.Brokers, cfg.Kafka, cfg.KafkaTimeout)

	topics := make([]string, len(cfg.Streams))
	names := make([]string, len(cfg.Streams))
	for i, st := range cfg.Streams {
		topics[i] = kafkatopic.Name(cfg.TopicPrefix, st.Name)
		names[i] = st.Name
	}
	// Every watermark is captured before anything is read, so that what
	// the report covers is one moment of every topic.
	marks, err := kr.watermarks(ctx, topics)
	if err != nil {
		return Report{}, err
	}
	h := eventkey.NewHasher()
	v := &verifier{
		cfg: cfg, kafka: kr, ch: chr, hash: h, progress: progress,
		log: cfg.Logger.With("component", "verify"),
		dlq: newDLQIndex(kr, kafkatopic.DLQ(cfg.TopicPrefix), names, h, progress),
	}
	if err := v.dlq.catchUp(ctx); err != nil {
		return Report{}, err
	}

	rep := Report{StartedAt: start.UTC(), TopicPrefix: cfg.TopicPrefix, Database: chr.db}
	var states []*streamState
	for i, st := range cfg.Streams {
		pms, exists := marks[topics[i]]
		ss, err := v.verifyStream(ctx, st, topics[i], pms, exists)
		if err != nil {
			return Report{}, err
		}
		states = append(states, ss)
	}
	if cfg.Wait > 0 {
		waitStart := time.Now()
		if err := v.waitForMissing(ctx, states, waitStart.Add(cfg.Wait)); err != nil {
			return Report{}, err
		}
		rep.Waited = time.Since(waitStart)
	}
	for _, ss := range states {
		if err := v.missingExamples(ctx, ss); err != nil {
			return Report{}, err
		}
		sr := ss.rep
		for _, ps := range ss.parts {
			sr.Partitions = append(sr.Partitions, ps.rep)
			sr.Totals.add(ps.rep.Counts)
		}
		rep.Streams = append(rep.Streams, sr)
		rep.Totals.add(sr.Totals)
	}
	rep.DeadLetters, rep.MalformedDeadLetters = v.dlq.letters, v.dlq.malformed
	rep.Duration = time.Since(start)
	return rep, nil
}

type verifier struct {
	cfg      Config
	kafka    *kafkaReader
	ch       *chReader
	hash     eventkey.Hasher
	dlq      *dlqIndex
	progress io.Writer
	log      *slog.Logger
}

// streamState is a stream being verified.
type streamState struct {
	st    *schemas.Stream
	topic string
	rep   StreamReport // without partitions and totals until the end
	parts []*partState
}

// partState is a partition being verified. Only what the wait and the
// examples need outlives the partition's pass.
type partState struct {
	rep   PartitionReport
	marks partitionMarks
	// missing maps the events still missing to their first offset, and
	// lost holds the offsets of undecodable messages that are not in the
	// dead-letter topic. Both can be as large as the partition, so they are
	// kept only when waiting; otherwise only the lowest offsets of each,
	// for the examples, are.
	missing       map[key]int64
	lost          map[int64]struct{}
	missingLowest []int64
	lostLowest    []int64
	// reasons says why the first undecodable messages do not decode.
	reasons map[int64]string
}

// otherRows counts the rows of an event_id that Kafka does not hold.
type otherRows struct {
	rows uint32
	// inRange is set when a row sits at or after the partition's first
	// offset: Kafka should hold the event, so it is unexpected rather than
	// deleted by retention.
	inRange bool
}

func (v *verifier) verifyStream(ctx context.Context, st *schemas.Stream, topic string, pms []partitionMarks, topicExists bool) (*streamState, error) {
	ss := &streamState{st: st, topic: topic, rep: StreamReport{Stream: st.Name, Topic: topic, Table: st.Table}}
	if !topicExists {
		ss.rep.Notes = append(ss.rep.Notes, fmt.Sprintf("topic %s does not exist", topic))
	}
	tableExists, err := v.ch.tableExists(ctx, st.Table)
	if err != nil {
		return nil, err
	}
	var chParts []int32
	if tableExists {
		if chParts, err = v.ch.partitions(ctx, st.Table); err != nil {
			return nil, err
		}
	} else {
		ss.rep.Notes = append(ss.rep.Notes, fmt.Sprintf("table %s.%s does not exist", v.ch.db, st.Table))
	}
	inKafka := map[int32]bool{}
	for _, pm := range pms {
		inKafka[int32(pm.partition)] = true
		ps, err := v.verifyPartition(ctx, ss, pm, tableExists)
		if err != nil {
			return nil, err
		}
		ss.parts = append(ss.parts, ps)
	}
	slices.Sort(chParts)
	for _, p := range chParts {
		if inKafka[p] {
			continue
		}
		// Rows of a partition Kafka does not have: every one is unexpected.
		pm := partitionMarks{partition: int(p), first: math.MinInt64, hw: noUpperBound}
		ps, err := v.verifyPartition(ctx, ss, pm, tableExists)
		if err != nil {
			return nil, err
		}
		ps.rep.InKafka, ps.rep.FirstOffset, ps.rep.HighWatermark = false, 0, 0
		ss.parts = append(ss.parts, ps)
	}
	return ss, nil
}

func (v *verifier) verifyPartition(ctx context.Context, ss *streamState, pm partitionMarks, tableExists bool) (*partState, error) {
	p := int32(pm.partition)
	label := fmt.Sprintf("%s/%d", ss.st.Name, p)
	ps := &partState{marks: pm, rep: PartitionReport{Partition: p, InKafka: true, FirstOffset: pm.first, HighWatermark: pm.hw}}
	c := &ps.rep.Counts

	// Kafka: the set of event_ids, and the messages that do not decode.
	first, hw := pm.first, pm.hw
	if first == math.MinInt64 { // not in Kafka
		first, hw = 0, 0
	}
	ks, err := newKeySet(first, hw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	var bad []int64
	ps.reasons = map[int64]string{}
	if hw > first {
		if err := v.readKafka(ctx, ss, pm, label, ks, c, &bad, ps.reasons); err != nil {
			return nil, err
		}
	}

	// ClickHouse: count the rows of each event_id.
	var dupIDs, unexpectedIDs []string
	if tableExists {
		if dupIDs, unexpectedIDs, err = v.scanRows(ctx, ss, ps, ks); err != nil {
			return nil, err
		}
	}

	// Absences: dead-lettered, or missing.
	if err := v.absences(ctx, ss, ps, ks, bad); err != nil {
		return nil, err
	}

	// Offsets of the example rows, now that the scan says which they are.
	if err := v.rowExamples(ctx, ss, ps, ks, dupIDs, unexpectedIDs); err != nil {
		return nil, err
	}
	v.log.Debug("partition verified", "stream", ss.st.Name, "partition", p, "first", pm.first, "hw", pm.hw,
		"messages", c.KafkaMessages, "events", c.Events, "rows", c.ClickHouseRows,
		"missing", c.Missing, "duplicated", c.Duplicated, "unexpected", c.Unexpected)
	return ps, nil
}

// scanRows counts the ClickHouse rows of each event_id of the partition up
// to its high watermark, into ps's counts: rows of the events in ks, and of
// others (before the first offset Kafka holds, or unexpected). It returns
// example event_ids of duplicated and unexpected rows.
func (v *verifier) scanRows(ctx context.Context, ss *streamState, ps *partState, ks *keySet) (dupIDs, unexpectedIDs []string, err error) {
	pm, c, p := ps.marks, &ps.rep.Counts, ps.rep.Partition
	label := fmt.Sprintf("%s/%d", ss.st.Name, p)
	others := map[key]otherRows{}
	below, above, err := v.ch.countRows(ctx, ss.st.Table, p, pm.hw)
	if err != nil {
		return nil, nil, err
	}
	c.RowsAfterWatermark = int64(above)
	ph := startPhase(v.progress, label+" clickhouse", "rows", int64(below))
	var n int64
	duplicated := func(id string) {
		c.Duplicated++
		if len(ss.rep.Duplicated)+len(dupIDs) < v.cfg.Examples {
			dupIDs = append(dupIDs, id)
		}
	}
	err = v.ch.scan(ctx, ss.st.Table, p, math.MinInt64, pm.hw, func(id string, off int64) {
		if n++; n%4096 == 0 {
			ph.add(4096)
		}
		c.ClickHouseRows++
		k := v.hash.Sum(id)
		if rows, ok := ks.addRow(k); ok {
			if rows >= 2 {
				c.ExtraRows++
				if rows == 2 {
					duplicated(id)
				}
			}
			return
		}
		o := others[k]
		if o.rows < math.MaxUint32 {
			o.rows++
		}
		newlyInRange := off >= pm.first && !o.inRange
		if off >= pm.first {
			o.inRange = true
		}
		others[k] = o
		if o.rows >= 2 {
			c.ExtraRows++
			if o.rows == 2 {
				duplicated(id)
			}
		}
		if newlyInRange && len(ss.rep.Unexpected)+len(unexpectedIDs) < v.cfg.Examples {
			unexpectedIDs = append(unexpectedIDs, id)
		}
	})
	ph.add(n % 4096)
	ph.end()
	if err != nil {
		return nil, nil, err
	}
	for _, o := range others {
		if o.inRange {
			c.Unexpected++
		} else {
			c.RowsBeforeFirstOffset += int64(o.rows)
		}
	}
	return dupIDs, unexpectedIDs, nil
}

// absences counts the events of ks without a row, and the messages that
// did not decode (bad), as dead-lettered or missing. The dead-letter topic
// is read up to now first: the workers may have given up on an event since
// the run started.
func (v *verifier) absences(ctx context.Context, ss *streamState, ps *partState, ks *keySet, bad []int64) error {
	c, p := &ps.rep.Counts, ps.rep.Partition
	if err := v.dlq.catchUp(ctx); err != nil {
		return err
	}
	if v.cfg.Wait > 0 {
		ps.missing, ps.lost = map[key]int64{}, map[int64]struct{}{}
	}
	var deadEvents int64
	ks.each(func(k key, off int64, rows uint64) {
		if rows > 0 {
			return
		}
		if v.dlq.has(ss.st.Name, ss.topic, p, off, k, true) {
			deadEvents++
			return
		}
		c.Missing++
		if ps.missing != nil {
			ps.missing[k] = off
		} else {
			ps.missingLowest = lowest(ps.missingLowest, off, v.cfg.Examples)
		}
	})
	c.DeadLettered += deadEvents
	c.Expected = c.Events - deadEvents
	for _, off := range bad {
		if v.dlq.has(ss.st.Name, ss.topic, p, off, key{}, false) {
			c.DeadLettered++
			continue
		}
		c.Missing++
		if ps.lost != nil {
			ps.lost[off] = struct{}{}
		} else {
			ps.lostLowest = lowest(ps.lostLowest, off, v.cfg.Examples)
		}
	}
	return nil
}

// lowest adds off to the sorted list of the n lowest offsets.
func lowest(list []int64, off int64, n int) []int64 {
	if n <= 0 || (len(list) == n && off >= list[n-1]) {
		return list
	}
	i, _ := slices.BinarySearch(list, off)
	list = slices.Insert(list, i, off)
	if len(list) > n {
		list = list[:n]
	}
	return list
}

// decoded is one message after decoding.
type decoded struct {
	offset int64
	key    key
	err    error
}

// readKafka reads the partition and records its event_ids in ks. Decoding
// is the costly part, so a reader feeds chunks of messages to decoders on
// every CPU while this goroutine alone touches ks.
// The offsets of undecodable messages go to bad, and the reasons of the
// first of them to reasons.
func (v *verifier) readKafka(ctx context.Context, ss *streamState, pm partitionMarks, label string, ks *keySet, c *Counts, bad *[]int64, reasons map[int64]string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ph := startPhase(v.progress, label+" kafka", "messages", pm.hw-pm.first)
	defer ph.end()

	chunks := make(chan []kafka.Message, v.cfg.Decoders)
	results := make(chan []decoded, v.cfg.Decoders)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(chunks)
		_, readErr = v.kafka.read(ctx, ss.topic, pm.partition, pm.first, pm.hw, func(ms []kafka.Message) error {
			select {
			case chunks <- ms:
				ph.add(int64(len(ms)))
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	var decoders sync.WaitGroup
	for range v.cfg.Decoders {
		decoders.Go(func() {
			for ms := range chunks {
				out := make([]decoded, len(ms))
				for i, m := range ms {
					out[i] = v.decode(ss.st, m)
				}
				select {
				case results <- out:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	go func() {
		decoders.Wait()
		close(results)
	}()
	for out := range results {
		for _, d := range out {
			c.KafkaMessages++
			if d.err != nil {
				c.Undecodable++
				*bad = append(*bad, d.offset)
				if len(reasons) < v.cfg.Examples {
					reasons[d.offset] = d.err.Error()
				}
				continue
			}
			if ks.addMessage(d.key, d.offset) {
				c.Events++
			}
		}
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}

// decode decodes like the workers do, a panic included: what the workers
// cannot decode they dead-letter.
func (v *verifier) decode(st *schemas.Stream, m kafka.Message) (d decoded) {
	d.offset = m.Offset
	defer func() {
		if r := recover(); r != nil {
			d.err = fmt.Errorf("panic while decoding: %v", r)
		}
	}()
	ev, err := st.Decode(m.Value)
	if err != nil {
		d.err = err
		return d
	}
	d.key = v.hash.Sum(ev.ID)
	return d
}

// rowExamples turns the event_ids of duplicated and unexpected rows found
// in a partition into examples with their offsets.
func (v *verifier) rowExamples(ctx context.Context, ss *streamState, ps *partState, ks *keySet, dupIDs, unexpectedIDs []string) error {
	if len(dupIDs)+len(unexpectedIDs) == 0 {
		return nil
	}
	offs, err := v.ch.offsetsOf(ctx, ss.st.Table, ps.rep.Partition, ps.marks.hw, append(slices.Clone(dupIDs), unexpectedIDs...))
	if err != nil {
		return err
	}
	example := func(id string) Example {
		e := Example{Partition: ps.rep.Partition, EventID: id, ClickHouseOffsets: offs[id]}
		if off, _, ok := ks.get(v.hash.Sum(id)); ok {
			e.KafkaOffset = &off
		}
		return e
	}
	for _, id := range dupIDs {
		ss.rep.Duplicated = append(ss.rep.Duplicated, example(id))
	}
	for _, id := range unexpectedIDs {
		ss.rep.Unexpected = append(ss.rep.Unexpected, example(id))
	}
	return nil
}

// waitForMissing re-checks missing events until they all arrive in
// ClickHouse or the dead-letter topic, or until deadline.
func (v *verifier) waitForMissing(ctx context.Context, states []*streamState, deadline time.Time) error {
	for {
		left := int64(0)
		for _, ss := range states {
			for _, ps := range ss.parts {
				left += int64(len(ps.missing) + len(ps.lost))
			}
		}
		if left == 0 {
			return nil
		}
		pause := min(v.cfg.PollInterval, time.Until(deadline))
		if pause <= 0 {
			return nil
		}
		if v.progress != nil {
			fmt.Fprintf(v.progress, "verify: waiting for %d missing events, %s left\n", left, time.Until(deadline).Round(time.Second))
		}
		if err := sleep(ctx, pause); err != nil {
			return err
		}
		if err := v.dlq.catchUp(ctx); err != nil {
			return err
		}
		for _, ss := range states {
			for _, ps := range ss.parts {
				if err := v.recheck(ctx, ss, ps); err != nil {
					return err
				}
			}
		}
	}
}

// recheck drops from a partition's missing events those that have arrived
// since: rows in ClickHouse, or letters in the dead-letter topic.
func (v *verifier) recheck(ctx context.Context, ss *streamState, ps *partState) error {
	c := &ps.rep.Counts
	p := ps.rep.Partition
	for off := range ps.lost {
		if v.dlq.has(ss.st.Name, ss.topic, p, off, key{}, false) {
			delete(ps.lost, off)
			c.Missing--
			c.DeadLettered++
		}
	}
	if len(ps.missing) == 0 {
		return nil
	}
	lo := int64(math.MaxInt64)
	for k, off := range ps.missing {
		if v.dlq.has(ss.st.Name, ss.topic, p, off, k, true) {
			delete(ps.missing, k)
			c.Missing--
			c.DeadLettered++
			c.Expected--
			continue
		}
		lo = min(lo, off)
	}
	if len(ps.missing) == 0 {
		return nil
	}
	// A missing event's row can only be at one of its offsets, the lowest
	// of which is what missing holds: rows below lo need not be read again.
	found := map[key]int64{}
	err := v.ch.scan(ctx, ss.st.Table, p, lo, ps.marks.hw, func(id string, _ int64) {
		k := v.hash.Sum(id)
		if _, ok := ps.missing[k]; ok {
			found[k]++
		}
	})
	if err != nil {
		return err
	}
	for k, n := range found {
		delete(ps.missing, k)
		c.Missing--
		c.ClickHouseRows += n
		if n > 1 {
			c.Duplicated++
			c.ExtraRows += n - 1
		}
	}
	return nil
}

// missingExamples reads the event_ids of the first missing events back from
// Kafka: the partitions' sets kept hashes only.
func (v *verifier) missingExamples(ctx context.Context, ss *streamState) error {
	type candidate struct {
		partition   int32
		offset      int64
		undecodable bool
		reason      string
	}
	var cands []candidate
	for _, ps := range ss.parts {
		missing, lost := ps.missingLowest, ps.lostLowest
		if ps.missing != nil {
			missing, lost = nil, nil
			for _, off := range ps.missing {
				missing = lowest(missing, off, v.cfg.Examples)
			}
			for off := range ps.lost {
				lost = lowest(lost, off, v.cfg.Examples)
			}
		}
		for _, off := range missing {
			cands = append(cands, candidate{ps.rep.Partition, off, false, ""})
		}
		for _, off := range lost {
			cands = append(cands, candidate{ps.rep.Partition, off, true, ps.reasons[off]})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
	})
	if len(cands) > v.cfg.Examples {
		cands = cands[:v.cfg.Examples]
	}
	for _, c := range cands {
		e := Example{Partition: c.partition, KafkaOffset: &c.offset}
		if c.undecodable {
			e.Problem = "does not decode and is not in the dead-letter topic"
			if c.reason != "" {
				e.Problem = "does not decode (" + c.reason + ") and is not in the dead-letter topic"
			}
			ss.rep.Missing = append(ss.rep.Missing, e)
			continue
		}
		m, ok, err := v.kafka.readAt(ctx, ss.topic, int(c.partition), c.offset)
		if err != nil {
			return fmt.Errorf("read example of a missing event: %w", err)
		}
		if ok {
			if ev, err := ss.st.Decode(m.Value); err == nil {
				e.EventID = ev.ID
			}
		}
		ss.rep.Missing = append(ss.rep.Missing, e)
	}
	return nil
}
