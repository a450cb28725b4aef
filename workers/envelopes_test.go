package workers

import (
	"context"
	"reflect"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/schemas"
)

// The store's lane leaves, for the outputs, where it found the envelope of
// each event it keeps, and none for those it skips; an output following it
// builds from that the envelope DecodeEnvelope reads, pointing into its
// own message.
func TestOutputTakesTheStoresEnvelopes(t *testing.T) {
	st := iotStream(t)
	d := newTestStoreDeliverer(t, newFakeStore(t, nil), &fakeDLQ{})
	p := newTestPartition(st, 0)
	if _, err := d.Open(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	deliver(t, d, p, makeBatch(t, st, 0, "a", "!", "a", "b"))

	// The output's lane reads the same messages, in buffers of its own.
	out := makeBatch(t, st, 0, "a", "!", "a", "b")
	var o OutputDeliverer
	for i, m := range out.Messages {
		env := p.envelopes.chunk(m.Offset).at(m.Offset)
		if kept := i == 0 || i == 3; (env.size != 0) != kept {
			t.Errorf("offset %d: the store left an envelope %v, want %v", m.Offset, env.size != 0, kept)
			continue
		}
		ev, kept, known := o.keeps(p, st, m, env)
		if !known {
			t.Errorf("offset %d: the output decided for itself", m.Offset)
		}
		if !kept {
			continue
		}
		want, err := st.DecodeEnvelope(m.Value)
		if err != nil || !reflect.DeepEqual(ev, want) {
			t.Errorf("offset %d: envelope %+v, DecodeEnvelope %+v, %v", m.Offset, ev, want, err)
		}
		start := uintptr(unsafe.Pointer(&m.Value[0]))
		if at := uintptr(unsafe.Pointer(unsafe.StringData(ev.ID))); at < start || at >= start+uintptr(len(m.Value)) {
			t.Errorf("offset %d: event_id is not a view of the output's own message", m.Offset)
		}
	}
}

// The output builds the envelope from where the store found it, without
// reading the event, and reads the event itself when the store's envelope
// does not fit its message.
func TestOutputEnvelopeFromPositions(t *testing.T) {
	st := iotStream(t)
	p := &Partition{Stream: st, window: newDedupeWindow(0, 100)}
	p.window.Duplicate("a", 0, recv0, true)
	m := makeBatch(t, st, 0, "a").Messages[0]
	want, err := st.DecodeEnvelope(m.Value)
	if err != nil {
		t.Fatal(err)
	}
	// Where the store's lane finds it, decoding for its Records.
	stored, _, err := schemas.NewRecords(st, 1).Decode(m.Value)
	if err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(stored, m.Value)
	if env.size == 0 {
		t.Fatal("the store's decoding copied the envelope's strings: nothing to test")
	}
	// Point the key at the event_id: only a lane that takes the
	// positions as they are reads "a" as the key.
	env.keyFrom, env.keyTo = env.idFrom, env.idTo
	var o OutputDeliverer
	if ev, _, _ := o.keeps(p, st, m, env); ev.Key != "a" {
		t.Errorf("key %q, want the range the store's envelope names", ev.Key)
	}
	env.size++ // another message than the one the store read
	if ev, _, _ := o.keeps(p, st, m, env); !reflect.DeepEqual(ev, want) {
		t.Errorf("envelope %+v of a message the store's envelope does not fit, want %+v", ev, want)
	}
}
