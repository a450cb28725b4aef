package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// fuzzPrefix and fuzzStream are what Subject is called with in production
// (the default --topic-prefix and a built-in stream): only the key comes
// from an event.
const (
	fuzzPrefix = "sluice."
	fuzzStream = "iot_telemetry"
)

// FuzzSubject checks that any partition key gives a subject NATS accepts
// for publishing and that nothing in it is special to NATS or to its
// protocol line: valid UTF-8, no whitespace or control character, no empty
// token, no wildcard, exactly the prefix's and stream's tokens plus one,
// and bounded in length.
func FuzzSubject(f *testing.F) {
	for _, k := range []string{"", "d-1", "a.b", "*", ">", "a b", "\t", "\x00", "\xff\xfe", "..", "a..b", ".",
		"\u00a0", "\u2028", "\u0085", "\ufeff", "ü", strings.Repeat("é", 300), strings.Repeat("a", 257),
		strings.Repeat("a", 199) + "é" + strings.Repeat("b", 100), "\r\n", "a\u200bb", "sensor-0042", "a~b!", "\x7f", "é.x"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		subj := Subject(fuzzPrefix, fuzzStream, key)
		if key != "" && keyToken(key) != buildToken(key) {
			t.Fatalf("keyToken(%q) = %q, built rune by rune %q", key, keyToken(key), buildToken(key))
		}
		if !utf8.ValidString(subj) {
			t.Fatalf("Subject(%q) = %q: not valid UTF-8", key, subj)
		}
		if i := strings.IndexFunc(subj, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || r == '*' || r == '>'
		}); i >= 0 {
			t.Fatalf("Subject(%q) = %q: %q at byte %d", key, subj, subj[i:], i)
		}
		tokens := strings.Split(subj, ".")
		if len(tokens) != 3 || tokens[2] == "" {
			t.Fatalf("Subject(%q) = %q: tokens %q, want sluice, %s and one non-empty key token", key, subj, tokens, fuzzStream)
		}
		if n := len(tokens[2]); n > MaxKeyToken {
			t.Fatalf("Subject(%q): key token of %d bytes, over %d", key, n, MaxKeyToken)
		}
		if !natsserver.IsValidPublishSubject(subj) {
			t.Fatalf("Subject(%q) = %q: the NATS server refuses it", key, subj)
		}
	})
}

// FuzzMsgID checks that a Nats-Msg-Id never has leading or trailing
// whitespace, CR or LF (which nats.go would trim or turn into spaces on the
// wire) and that distinct event_ids never share one: the pair given, and
// pairs derived from each id that an encoding would most likely confuse
// (the id with whitespace around it, trimmed, shortened by a byte, and the
// very "sha256:" form it could be hashed to).
func FuzzMsgID(f *testing.F) {
	seeds := [][2]string{{"a", " a"}, {"a", "a\n"}, {"a\r", "a\n"}, {"", " "}, {"sha256:x", "x"}, {"\xff", "\xfe"},
		{"é", "e\u0301"}, {"a\u00a0", "a"}, {"a\x00b", "a b"}, {"id-1", "id-2"}}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, id := range []string{a, b} {
			checkMsgIDShape(t, id)
		}
		ids := []string{a, b}
		for _, id := range []string{a, b} {
			sum := sha256.Sum256([]byte(id))
			ids = append(ids, " "+id, id+" ", id+"\n", "\r"+id, strings.TrimSpace(id), MsgID(id),
				msgIDHashPrefix+hex.EncodeToString(sum[:]))
			if id != "" {
				ids = append(ids, id[:len(id)-1], id[1:])
			}
		}
		seen := map[string]string{}
		for _, id := range ids {
			m := MsgID(id)
			if other, ok := seen[m]; ok && other != id {
				t.Fatalf("MsgID(%q) = MsgID(%q) = %q", id, other, m)
			}
			seen[m] = id
		}
	})
}

// checkMsgIDShape fails unless MsgID(id) survives a NATS header unchanged.
func checkMsgIDShape(t *testing.T, id string) {
	t.Helper()
	m := MsgID(id)
	if m == "" {
		if id != "" {
			t.Fatalf("MsgID(%q) is empty", id)
		}
		return
	}
	first, _ := utf8.DecodeRuneInString(m)
	last, _ := utf8.DecodeLastRuneInString(m)
	if unicode.IsSpace(first) || unicode.IsSpace(last) || strings.ContainsAny(m, "\r\n") || !utf8.ValidString(m) {
		t.Fatalf("MsgID(%q) = %q: would not survive a NATS header unchanged", id, m)
	}
}
