package workers

import (
	"reflect"
	"testing"
	"time"
)

// An output's lane behind the store's takes the store's word for each
// offset: it skips what the store dead-lettered or found a duplicate, even
// where it would decide otherwise itself, and reads only the envelope of
// the rest. Ahead of the store, it decides for itself.
func TestOutputTakesTheStoresVerdicts(t *testing.T) {
	st := iotStream(t)
	p := &Partition{Stream: st, window: newDedupeWindow(time.Hour, 100)}
	b := makeBatch(t, st, 0, "a", "b", "c", "!", "e")
	// The store's lane went through offsets 0-2: a kept, b dead-lettered
	// (it is valid: only the store's word makes it skipped), c a duplicate.
	p.window.Duplicate("a", 0, recv0, true)
	p.window.Invalid(1)
	p.window.Duplicate("a", 2, recv0, true)
	var d OutputDeliverer
	want := []bool{true, false, false, false, true}
	for i, m := range b.Messages {
		ev, kept, known := d.keeps(p, st, m, envelopeAt{})
		if kept != want[i] {
			t.Errorf("offset %d: kept %v, want %v", m.Offset, kept, want[i])
		}
		if wantKnown := m.Offset <= 2; known != wantKnown {
			t.Errorf("offset %d: decided by the store %v, want %v", m.Offset, known, wantKnown)
		}
		if !kept {
			continue
		}
		env, err := st.DecodeEnvelope(m.Value)
		if err != nil || !reflect.DeepEqual(ev, env) {
			t.Errorf("offset %d: envelope %+v, DecodeEnvelope %+v, %v", m.Offset, ev, env, err)
		}
	}
}

// A message that panics the decoder is skipped by the output's lane, as
// the store's lane dead-letters it, rather than ending the lane.
func TestOutputIsolatesDecodePanics(t *testing.T) {
	st := iotStream(t)
	m := makeBatch(t, st, 0, "a").Messages[0]
	var d OutputDeliverer
	if _, kept, _ := d.keeps(&Partition{}, nil, m, envelopeAt{}); kept {
		t.Error("decoding with no stream: kept, want skipped")
	}
}
