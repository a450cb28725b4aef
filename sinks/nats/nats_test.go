package nats

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSubject(t *testing.T) {
	tests := []struct{ key, want string }{
		{"sensor-0042", "sluice.iot_telemetry.sensor-0042"},
		{"a.b", "sluice.iot_telemetry.a_b"},
		{"a*b>c", "sluice.iot_telemetry.a_b_c"},
		{"two words\tand\ttabs", "sluice.iot_telemetry.two_words_and_tabs"},
		{"", "sluice.iot_telemetry._"},
		{"ünïcode", "sluice.iot_telemetry.ünïcode"},
		{"nul\x00byte", "sluice.iot_telemetry.nul_byte"},
		{"crlf\r\nPUB x 1", "sluice.iot_telemetry.crlf__PUB_x_1"},
		{"bell\x07del\x7fc1\u0085", "sluice.iot_telemetry.bell_del_c1_"},
		{"nbsp\u00a0ideo\u3000ls\u2028ps\u2029", "sluice.iot_telemetry.nbsp_ideo_ls_ps_"},
		{"bad\xffutf8", "sluice.iot_telemetry.bad\ufffdutf8"},
	}
	for _, tt := range tests {
		if got := Subject("sluice.", "iot_telemetry", tt.key); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestSubjectBoundsLongKeys(t *testing.T) {
	long := strings.Repeat("k", 4096)
	other := long[:4095] + "x"
	exact := strings.Repeat("e", MaxKeyToken)
	multibyte := strings.Repeat("日", 2000) // a cut must not split a character

	for _, key := range []string{long, other, multibyte} {
		tok := strings.TrimPrefix(Subject("p.", "s", key), "p.s.")
		if len(tok) > MaxKeyToken || !utf8.ValidString(tok) || strings.ContainsFunc(tok, unicode.IsSpace) {
			t.Errorf("token of a %d-byte key: %d bytes, valid UTF-8 %v: %q", len(key), len(tok), utf8.ValidString(tok), tok)
		}
	}
	if Subject("p.", "s", long) == Subject("p.", "s", other) {
		t.Error("two long keys that differ only at their end share a subject")
	}
	if got := Subject("p.", "s", exact); got != "p.s."+exact {
		t.Errorf("a key of exactly MaxKeyToken bytes was changed: %q", got)
	}
	if got, want := Subject("p.", "s", long), "p.s."+long[:keyKeep]+"~"; !strings.HasPrefix(got, want) || len(got) != len(want)+32 {
		t.Errorf("Subject(4 KiB key) = %q, want %q + 32 hex digits", got, want)
	}
}

func TestMsgIDIsUnambiguous(t *testing.T) {
	// Every id here would reach the server, after nats.go's trimming, as
	// "a" or "a b" if it were sent as it is.
	ids := []string{"a", " a", "a ", "\ta", "a\n", "a\r", "a\r\n", "\u00a0a", "a\u2028", "a b", "a\nb", "a\rb", "a\x00", "sha256:a"}
	seen := make(map[string]string)
	for _, id := range ids {
		got := MsgID(id)
		if prev, dup := seen[got]; dup {
			t.Errorf("MsgID(%q) = MsgID(%q) = %q", id, prev, got)
		}
		seen[got] = id
		if strings.TrimSpace(got) != got || strings.ContainsFunc(got, unicode.IsControl) {
			t.Errorf("MsgID(%q) = %q, which nats.go would alter", id, got)
		}
	}
	for _, id := range []string{"a", "a b", "0193a5c2-7d1e-7b3a-9f00-5e2c1d4b8a77", "日本", ""} {
		if got := MsgID(id); got != id {
			t.Errorf("MsgID(%q) = %q, want it unchanged", id, got)
		}
	}
	if got, want := MsgID(" a"), "sha256:"; !strings.HasPrefix(got, want) || len(got) != len(want)+64 {
		t.Errorf("MsgID(\" a\") = %q, want sha256: and 64 hex digits", got)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@host:4222", "nats://redacted@host:4222"},
		{"nats://s3cr3ttoken@host", "nats://redacted@host"},
		{"nats://a:b@h1:4222, tls://c:d@h2:4222", "nats://redacted@h1:4222, tls://redacted@h2:4222"},
		{`parse "nats://u:pa/ss@host:x": bad`, `parse "nats://redacted@host:x": bad`},
		{"nats://u:p@ss@host", "nats://redacted@host"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConnectErrorHidesCredentials(t *testing.T) {
	_, err := Connect(Options{URL: "nats://sluice:hun/ter2@127.0.0.1:42"}) // fails to parse
	if err == nil {
		t.Fatal("Connect of an unparsable URL succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun") {
		t.Errorf("connect error shows the password: %v", err)
	}
}

// A worker that starts while NATS is down keeps going: the first
// connection is retried in the background, and publishing fails until then.
func TestConnectWhileNATSIsDown(t *testing.T) {
	for _, url := range []string{
		"nats://sluice:hunter2@127.0.0.1:1", // nothing listens on port 1
		"nats://hunter2@127.0.0.1:1",        // a token
	} {
		p, err := Connect(Options{URL: url})
		if err != nil {
			t.Fatalf("Connect(%s) with the server down: %v", url, err)
		}
		st := testStream(t)
		err = p.Publish(context.Background(), st, 0, rows(0, 1))
		if err == nil {
			t.Errorf("Publish while NATS is down succeeded")
		}
		_ = p.Close()
	}
}
