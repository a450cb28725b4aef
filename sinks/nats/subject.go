package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluicehq/sluice/schemas"
)

// MaxKeyToken bounds, in bytes, the subject token a partition key becomes.
// NATS sends a subject in a protocol control line (4 KiB by default); a
// longer one makes the server drop the whole connection, every partition's
// publishing with it.
const MaxKeyToken = 256

// keyKeep is how much of a too-long key's token is kept before its hash.
const keyKeep = 200

// Subject returns the subject of a stream's events with partition key key:
// prefix + stream + "." + token. In the token, '.', '*', '>', whitespace
// (unicode.IsSpace: tab, NBSP, U+2028...) and control characters
// (unicode.IsControl, NUL included) become '_', since NATS gives them
// special meaning or they break or obscure the protocol; invalid UTF-8
// becomes U+FFFD; an empty key becomes "_". A token over MaxKeyToken bytes
// is cut to its first 200 bytes (at a character boundary) followed by '~'
// and 32 hex digits of the SHA-256 of the original key, so long keys that
// share a beginning still get distinct subjects.
//
// Distinct keys can share a subject ("a.b" and "a_b"): subscribers that
// need the exact key read it from the event.
func Subject(prefix, stream, key string) string {
	return prefix + stream + "." + keyToken(key)
}

func keyToken(key string) string {
	if key == "" {
		return "_"
	}
	if plainToken(key) {
		return key
	}
	return buildToken(key)
}

// buildToken is keyToken, rune by rune.
func buildToken(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r) // an invalid byte arrives as utf8.RuneError
	}
	t := b.String()
	if len(t) <= MaxKeyToken {
		return t
	}
	sum := sha256.Sum256([]byte(key))
	return schemas.Cut(t, keyKeep) + "~" + hex.EncodeToString(sum[:16])
}

// plainToken reports whether key is its own token: printable ASCII
// without '.', '*' or '>', and short enough. Device and service names
// mostly are, and building their token again for every event published
// was a fiftieth of the work role's CPU.
func plainToken(key string) bool {
	if len(key) > MaxKeyToken {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f || c == '.' || c == '*' || c == '>' {
			return false
		}
	}
	return true
}

// msgIDHashPrefix marks a Nats-Msg-Id that is a hash of the event_id.
const msgIDHashPrefix = "sha256:"

// MsgID returns the Nats-Msg-Id JetStream deduplicates an event by: its
// event_id as it is, unless sending it as a header value would make it
// ambiguous. nats.go trims leading and trailing whitespace from header
// values and turns CR and LF into spaces, so "a", " a", "a\n" and "a\r"
// would share one id and JetStream would drop all but the first as
// duplicates. Such an id, that is one that
//
//   - has leading or trailing whitespace (unicode.IsSpace),
//   - contains a control character anywhere (unicode.IsControl),
//   - is not valid UTF-8, or
//   - itself starts with "sha256:" (so no raw id can equal an encoded one),
//
// is sent as "sha256:" followed by the 64 lowercase hex digits of the
// SHA-256 of its bytes. The empty id stays empty: Publish then sends no
// Nats-Msg-Id, and the event is not deduplicated.
func MsgID(eventID string) string {
	if eventID == "" || !ambiguousHeader(eventID) {
		return eventID
	}
	sum := sha256.Sum256([]byte(eventID))
	return msgIDHashPrefix + hex.EncodeToString(sum[:])
}

func ambiguousHeader(id string) bool {
	if strings.HasPrefix(id, msgIDHashPrefix) || !utf8.ValidString(id) {
		return true
	}
	first, _ := utf8.DecodeRuneInString(id)
	last, _ := utf8.DecodeLastRuneInString(id)
	return unicode.IsSpace(first) || unicode.IsSpace(last) || strings.IndexFunc(id, unicode.IsControl) >= 0
}
