package relp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadFrameGood(t *testing.T) {
	cases := []struct {
		in   string
		want Frame
	}{
		{"1 open 14 relp_version=0\n", Frame{1, "open", []byte("relp_version=0")}},
		{"2 close 0\n", Frame{2, "close", nil}},
		{"0 serverclose 0\n", Frame{0, "serverclose", nil}},
		// Data may hold LF and any byte: only DATALEN delimits it.
		{"3 syslog 7 a\nb\x00c\xff\n\n", Frame{3, "syslog", []byte("a\nb\x00c\xff\n")}},
		{"999999999 syslog 1 x\n", Frame{999999999, "syslog", []byte("x")}},
	}
	for _, c := range cases {
		got, err := ReadFrame(bufio.NewReader(strings.NewReader(c.in)), 100)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got.Txnr != c.want.Txnr || got.Cmd != c.want.Cmd || !bytes.Equal(got.Data, c.want.Data) {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestReadFrameSequence(t *testing.T) {
	var in []byte
	for i := 1; i <= 3; i++ {
		in = AppendFrame(in, i, "syslog", []byte("line"))
	}
	br := bufio.NewReader(bytes.NewReader(in))
	for i := 1; i <= 3; i++ {
		f, err := ReadFrame(br, 100)
		if err != nil || f.Txnr != i || string(f.Data) != "line" {
			t.Fatalf("frame %d: %+v, %v", i, f, err)
		}
	}
	if _, err := ReadFrame(br, 100); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameBad(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"datalen longer than data", "1 syslog 10 abc\n2 syslog 3 def\n", ErrInvalidFrame},
		{"datalen shorter than data", "1 syslog 2 abc\n", ErrInvalidFrame},
		{"datalen 2^40", "1 syslog 1099511627776 x\n", ErrInvalidFrame},
		{"datalen over the limit", "1 syslog 101 " + strings.Repeat("x", 101) + "\n", ErrFrameTooLarge},
		{"binary garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrInvalidFrame},
		{"http", "GET / HTTP/1.1\r\n\r\n", ErrInvalidFrame},
		{"txnr of 10 digits", "1234567890 syslog 1 x\n", ErrInvalidFrame},
		{"command with a digit", "1 sys1og 1 x\n", ErrInvalidFrame},
		{"command too long", "1 " + strings.Repeat("a", 33) + " 0\n", ErrInvalidFrame},
		{"no command", "1  0\n", ErrInvalidFrame},
		{"negative datalen", "1 syslog -1 x\n", ErrInvalidFrame},
		{"truncated data", "1 syslog 10 abc", io.ErrUnexpectedEOF},
		{"truncated header", "1 sys", io.ErrUnexpectedEOF},
		{"no trailer", "1 syslog 3 abc", io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ReadFrame(bufio.NewReader(strings.NewReader(c.in)), 100)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", f, err, c.want)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	if got := string(AppendFrame(nil, 7, "rsp", []byte("200 OK"))); got != "7 rsp 6 200 OK\n" {
		t.Errorf("got %q", got)
	}
	if got := string(AppendFrame(nil, 8, "rsp", nil)); got != "8 rsp 0\n" {
		t.Errorf("got %q", got)
	}
	if nextTxnr(maxTxnr) != 1 || nextTxnr(1) != 2 {
		t.Error("nextTxnr does not wrap to 1 after 999999999")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("1 open 3 abc\n"), 16)
	f.Add([]byte("1 syslog 1099511627776 x\n"), 16)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max = max&0xffff + 1
		fr, err := ReadFrame(bufio.NewReader(bytes.NewReader(in)), max)
		if err != nil {
			return
		}
		if len(fr.Data) > max {
			t.Fatalf("data of %d bytes over the limit %d", len(fr.Data), max)
		}
	})
}
