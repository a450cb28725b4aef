package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Counts are the reconciliation numbers of one partition, one stream, or
// everything. Events are distinct event_ids; rows and messages are counted
// as such.
type Counts struct {
	// KafkaMessages is the number of messages read, from the earliest
	// offset to the high watermark captured at start. A producer's retry
	// can make two messages of one event.
	KafkaMessages int64 `json:"kafka_messages"`
	// Undecodable is how many of those messages Stream.Decode rejects; the
	// workers dead-letter them.
	Undecodable int64 `json:"undecodable"`
	// Events is the number of distinct event_ids among the decodable
	// messages.
	Events int64 `json:"events"`
	// DeadLettered counts events absent from ClickHouse that the
	// dead-letter topic accounts for, plus undecodable messages found there.
	DeadLettered int64 `json:"dead_lettered"`
	// Expected is how many events ClickHouse should hold: Events less the
	// dead-lettered ones.
	Expected int64 `json:"expected"`
	// ClickHouseRows is the number of rows below the watermark.
	ClickHouseRows int64 `json:"clickhouse_rows"`
	// Missing counts expected events without a row, plus undecodable
	// messages that are not in the dead-letter topic either: lost rather
	// than rejected.
	Missing int64 `json:"missing"`
	// Duplicated counts event_ids with more than one row; ExtraRows the
	// rows beyond the first of each, which is how far count() is off.
	Duplicated int64 `json:"duplicated"`
	ExtraRows  int64 `json:"extra_rows"`
	// Unexpected counts event_ids with rows that Kafka does not hold at
	// all, for instance after the topic was deleted and created again.
	Unexpected int64 `json:"unexpected"`
	// RowsAfterWatermark are rows at offsets written after verify started;
	// they are not checked.
	RowsAfterWatermark int64 `json:"rows_after_watermark"`
	// RowsBeforeFirstOffset are rows of event_ids Kafka no longer holds
	// because retention deleted their offsets; they cannot be checked.
	RowsBeforeFirstOffset int64 `json:"rows_before_first_offset"`
}

// Clean reports whether nothing is missing, duplicated or unexpected.
func (c Counts) Clean() bool { return c.Missing == 0 && c.Duplicated == 0 && c.Unexpected == 0 }

func (c *Counts) add(o Counts) {
	c.KafkaMessages += o.KafkaMessages
	c.Undecodable += o.Undecodable
	c.Events += o.Events
	c.DeadLettered += o.DeadLettered
	c.Expected += o.Expected
	c.ClickHouseRows += o.ClickHouseRows
	c.Missing += o.Missing
	c.Duplicated += o.Duplicated
	c.ExtraRows += o.ExtraRows
	c.Unexpected += o.Unexpected
	c.RowsAfterWatermark += o.RowsAfterWatermark
	c.RowsBeforeFirstOffset += o.RowsBeforeFirstOffset
}

// PartitionReport is one Kafka partition of one stream.
type PartitionReport struct {
	Partition int32 `json:"partition"`
	// InKafka is false for a partition that only ClickHouse has rows of:
	// the topic has fewer partitions now, or does not exist.
	InKafka bool `json:"in_kafka"`
	// FirstOffset and HighWatermark bound what was read: [first, hw).
	FirstOffset   int64 `json:"first_offset"`
	HighWatermark int64 `json:"high_watermark"`
	Counts
}

// Example is one event_id behind a count, to start an investigation from.
type Example struct {
	Partition int32 `json:"partition"`
	// EventID is empty for a message that does not decode.
	EventID string `json:"event_id,omitempty"`
	// KafkaOffset is the event's first offset in its partition, when Kafka
	// holds it.
	KafkaOffset *int64 `json:"kafka_offset,omitempty"`
	// ClickHouseOffsets are the kafka_offset values of the event's rows.
	ClickHouseOffsets []int64 `json:"clickhouse_offsets,omitempty"`
	// Problem explains an example that is not self-evident.
	Problem string `json:"problem,omitempty"`
}

// StreamReport is one stream: its partitions, their sum, and examples.
type StreamReport struct {
	Stream     string            `json:"stream"`
	Topic      string            `json:"topic"`
	Table      string            `json:"table"`
	Partitions []PartitionReport `json:"partitions"`
	Totals     Counts            `json:"totals"`
	// Missing, Duplicated and Unexpected hold the first examples of each,
	// by partition and offset.
	Missing    []Example `json:"missing_examples,omitempty"`
	Duplicated []Example `json:"duplicated_examples,omitempty"`
	Unexpected []Example `json:"unexpected_examples,omitempty"`
	// Notes say what was unusual: a topic or table that does not exist.
	Notes []string `json:"notes,omitempty"`
}

// Clean reports whether the stream's Kafka topic and ClickHouse table agree.
func (s StreamReport) Clean() bool { return s.Totals.Clean() }

// Report is the outcome of a Run.
type Report struct {
	StartedAt time.Time `json:"started_at"`
	// Duration is how long the run took, waiting included.
	Duration time.Duration `json:"-"`
	// Waited is how long missing events were waited for (--wait).
	Waited      time.Duration  `json:"-"`
	TopicPrefix string         `json:"topic_prefix"`
	Database    string         `json:"clickhouse_database"`
	Streams     []StreamReport `json:"streams"`
	Totals      Counts         `json:"totals"`
	// DeadLetters is the number of records read from the dead-letter topic,
	// Malformed those of them that are not Sluice dead letters.
	DeadLetters          int64 `json:"dead_letters_read"`
	MalformedDeadLetters int64 `json:"malformed_dead_letters"`
}

// Clean reports whether Kafka and ClickHouse agree everywhere: nothing
// missing, duplicated or unexpected.
func (r Report) Clean() bool { return r.Totals.Clean() }

// MarshalJSON adds the verdict and renders durations in seconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		Clean           bool    `json:"clean"`
		DurationSeconds float64 `json:"duration_seconds"`
		WaitedSeconds   float64 `json:"waited_seconds"`
		plain
	}{r.Clean(), r.Duration.Seconds(), r.Waited.Seconds(), plain(r)})
}

// WriteText writes the report for people: a table per stream and
// partition with totals, the examples, and the verdict.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	// Numbers align right; the names are padded to one width so that they
	// read left-aligned all the same.
	width := len("STREAM/PARTITION")
	for _, s := range r.Streams {
		for _, p := range s.Partitions {
			width = max(width, len(s.Stream)+1+len(strconv.Itoa(int(p.Partition))))
		}
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name, offsets string, c Counts) {
		fmt.Fprintf(tw, "%-*s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", width, name, offsets,
			c.KafkaMessages, c.Events, c.DeadLettered, c.Expected, c.ClickHouseRows, c.Missing, c.Duplicated, c.ExtraRows, c.Unexpected)
	}
	fmt.Fprintf(tw, "%-*s\tOFFSETS\tKAFKA MSGS\tEVENTS\tDEAD-LETTERED\tEXPECTED\tCH ROWS\tMISSING\tDUPLICATED\tEXTRA ROWS\tUNEXPECTED\t\n", width, "STREAM/PARTITION")
	for _, s := range r.Streams {
		for _, p := range s.Partitions {
			offsets := "not in kafka"
			if p.InKafka {
				offsets = strconv.FormatInt(p.FirstOffset, 10) + "-" + strconv.FormatInt(p.HighWatermark, 10)
			}
			row(s.Stream+"/"+strconv.Itoa(int(p.Partition)), offsets, p.Counts)
		}
		row(s.Stream, "", s.Totals)
	}
	row("TOTAL", "", r.Totals)
	tw.Flush()

	for _, s := range r.Streams {
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "%s: note: %s\n", s.Stream, n)
		}
		t := s.Totals
		if t.Missing > 0 {
			fmt.Fprintf(&b, "\n%s: %d missing%s:\n", s.Stream, t.Missing, shown(len(s.Missing), t.Missing))
			for _, e := range s.Missing {
				fmt.Fprintf(&b, "  partition %d  %s\n", e.Partition, describe(e))
			}
		}
		if t.Duplicated > 0 {
			fmt.Fprintf(&b, "\n%s: %d duplicated event_ids, %d extra rows%s:\n", s.Stream, t.Duplicated, t.ExtraRows, shown(len(s.Duplicated), t.Duplicated))
			for _, e := range s.Duplicated {
				fmt.Fprintf(&b, "  partition %d  %s\n", e.Partition, describe(e))
			}
		}
		if t.Unexpected > 0 {
			fmt.Fprintf(&b, "\n%s: %d unexpected event_ids, in ClickHouse but not in Kafka%s:\n", s.Stream, t.Unexpected, shown(len(s.Unexpected), t.Unexpected))
			for _, e := range s.Unexpected {
				fmt.Fprintf(&b, "  partition %d  %s\n", e.Partition, describe(e))
			}
		}
	}

	t := r.Totals
	b.WriteString("\n")
	if t.RowsAfterWatermark > 0 {
		fmt.Fprintf(&b, "Not checked: %d rows at offsets written after verify started.\n", t.RowsAfterWatermark)
	}
	if t.RowsBeforeFirstOffset > 0 {
		fmt.Fprintf(&b, "Not checked: %d rows of offsets that Kafka's retention has deleted.\n", t.RowsBeforeFirstOffset)
	}
	if r.Clean() {
		undecodable := ""
		if t.Undecodable > 0 {
			undecodable = fmt.Sprintf(", of them %d undecodable", t.Undecodable)
		}
		fmt.Fprintf(&b, "CLEAN: ClickHouse holds each of the %d expected events exactly once (%d dead-lettered%s).\n", t.Expected, t.DeadLettered, undecodable)
	} else {
		fmt.Fprintf(&b, "NOT CLEAN: %d missing, %d duplicated (%d extra rows), %d unexpected.\n", t.Missing, t.Duplicated, t.ExtraRows, t.Unexpected)
		if t.Missing > 0 && r.Waited == 0 {
			b.WriteString("Verify is exact when the pipeline is idle; while it runs, events the workers have not delivered yet count as missing (see --wait).\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shown(n int, of int64) string {
	if n == 0 {
		return ""
	}
	if int64(n) == of {
		return ""
	}
	return fmt.Sprintf(" (first %d)", n)
}

func describe(e Example) string {
	var parts []string
	if e.EventID != "" {
		parts = append(parts, "event_id "+strconv.Quote(e.EventID))
	}
	if e.KafkaOffset != nil {
		parts = append(parts, "kafka offset "+strconv.FormatInt(*e.KafkaOffset, 10))
	}
	if len(e.ClickHouseOffsets) > 0 {
		offs := make([]string, len(e.ClickHouseOffsets))
		for i, o := range e.ClickHouseOffsets {
			offs[i] = strconv.FormatInt(o, 10)
		}
		parts = append(parts, "rows at offsets "+strings.Join(offs, ", "))
	}
	if e.Problem != "" {
		parts = append(parts, e.Problem)
	}
	return strings.Join(parts, "  ")
}
