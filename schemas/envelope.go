package schemas

// DecodeEnvelope is Decode for a reader that passes the encoded event on
// and needs only its envelope: it accepts and refuses exactly what Decode
// does, with the same errors, and returns the same ID, Key and ReceivedAt,
// but leaves Fields nil.
func (s *Stream) DecodeEnvelope(b []byte) (Event, error) {
	ev, err := s.Decode(b)
	ev.Fields = nil
	return ev, err
}
