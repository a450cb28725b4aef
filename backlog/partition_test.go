package backlog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// stamps is a stamper over a partition whose message at offset o was
// written at base + o seconds; it counts its calls.
type stamps struct {
	base  time.Time
	calls []int64
	err   error
}

func (s *stamps) stamp(o int64) (time.Time, error) {
	s.calls = append(s.calls, o)
	if s.err != nil {
		return time.Time{}, s.err
	}
	return s.base.Add(time.Duration(o) * time.Second), nil
}

func TestPartitionStep(t *testing.T) {
	const retention = 100 * time.Second // alarm at 50s with the default fraction
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	type step struct {
		name      string
		r         reading
		at        time.Duration // since base
		retention time.Duration
		wantAge   time.Duration
		alarm     bool
		expired   bool
		lost      int64
		stamped   []int64 // offsets whose timestamp the step reads
		problem   string  // a part of what Check would say
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"empty partition", []step{
			{name: "nothing to read", r: reading{-1, 0, 0}, at: time.Hour, retention: retention},
		}},
		{"no commit: from the log start", []step{
			{name: "young", r: reading{-1, 0, 10}, at: 40 * time.Second, retention: retention, wantAge: 40 * time.Second, stamped: []int64{0}},
			{name: "half the retention", r: reading{-1, 0, 10}, at: 50 * time.Second, retention: retention, wantAge: 50 * time.Second, alarm: true,
				problem: "t[3] (stream s): oldest unread event 50s old, retention 1m40s (alarm at 50s)"},
			{name: "expired from the first log start seen", r: reading{-1, 4, 10}, at: 101 * time.Second, retention: retention, wantAge: 97 * time.Second,
				alarm: true, expired: true, lost: 4, stamped: []int64{4}, problem: "offsets 0-3 expired from Kafka unread (retention 1m40s)"},
			{name: "more lost, counted once", r: reading{-1, 6, 10}, at: 103 * time.Second, retention: retention, wantAge: 97 * time.Second,
				alarm: true, expired: true, lost: 2, stamped: []int64{6}, problem: "offsets 0-5 expired"},
			{name: "committed past the loss", r: reading{10, 6, 10}, at: 104 * time.Second, retention: retention},
		}},
		{"committed in the middle", []step{
			{name: "age of the first uncommitted", r: reading{5, 0, 10}, at: 60 * time.Second, retention: retention, wantAge: 55 * time.Second, alarm: true, stamped: []int64{5}},
			{name: "hysteresis holds at 90% of the threshold", r: reading{10, 0, 20}, at: 55 * time.Second, retention: retention, wantAge: 45 * time.Second, alarm: true, stamped: []int64{10}},
			{name: "clears below 80%", r: reading{20, 0, 30}, at: 59 * time.Second, retention: retention, wantAge: 39 * time.Second, stamped: []int64{20}},
			{name: "below the threshold again: off", r: reading{20, 0, 30}, at: 65 * time.Second, retention: retention, wantAge: 45 * time.Second},
		}},
		{"committed at or past the end", []step{
			{name: "at", r: reading{10, 0, 10}, at: time.Hour, retention: retention},
			{name: "past", r: reading{12, 0, 10}, at: time.Hour, retention: retention},
		}},
		{"unlimited retention", []step{
			{name: "old but kept", r: reading{0, 0, 10}, at: 1000 * time.Hour, wantAge: 1000 * time.Hour, stamped: []int64{0}},
			{name: "deleted all the same", r: reading{0, 3, 10}, at: 1000 * time.Hour, wantAge: 1000*time.Hour - 3*time.Second,
				alarm: true, expired: true, lost: 3, stamped: []int64{3}, problem: "offsets 0-2 expired from Kafka unread (retention unlimited)"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPartition("t", "s", 3)
			for _, st := range tt.steps {
				s := &stamps{base: base}
				lost, err := p.step(st.r, base.Add(st.at), st.retention, DefaultFraction, s.stamp)
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if p.age != st.wantAge || p.alarm != st.alarm || p.expired != st.expired || lost != st.lost {
					t.Errorf("%s: age %s alarm %v expired %v lost %d, want %s %v %v %d",
						st.name, p.age, p.alarm, p.expired, lost, st.wantAge, st.alarm, st.expired, st.lost)
				}
				if !slices.Equal(s.calls, st.stamped) {
					t.Errorf("%s: read timestamps at %v, want %v (a timestamp is read once per offset)", st.name, s.calls, st.stamped)
				}
				got := p.problem(DefaultFraction)
				if (got == "") == p.alarm || !strings.Contains(got, st.problem) {
					t.Errorf("%s: problem %q, want one containing %q", st.name, got, st.problem)
				}
			}
		})
	}
}

func TestPartitionStepFailureLeavesState(t *testing.T) {
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	p := newPartition("t", "s", 0)
	if _, err := p.step(reading{-1, 0, 10}, base.Add(time.Minute), time.Minute, 0.5, (&stamps{base: base}).stamp); err != nil || !p.alarm {
		t.Fatalf("first step: %v, alarm %v", err, p.alarm)
	}
	before := *p
	fail := &stamps{err: errors.New("broker gone")}
	if _, err := p.step(reading{5, 0, 10}, base.Add(2*time.Minute), time.Minute, 0.5, fail.stamp); err == nil {
		t.Fatal("a failed timestamp read went unreported")
	}
	if *p != before {
		t.Errorf("state changed by a failed step: %+v, was %+v", *p, before)
	}
}
