package syslog

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testkit"
)

var testNow = time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)

func TestToEvent(t *testing.T) {
	nowTS := "2026-11-30T14:00:00.000Z"
	cases := []struct {
		name, line string
		want       map[string]any
	}{
		{
			"5424 with SD, msgid, procid",
			`<156>1 2026-11-30T14:09:33.354106+01:00 vm myapp 42 MID1 [timeQuality tzKnown="1" isSynced="0"][ex@32473 k="v 1" n="2"] hello world`,
			map[string]any{"service": "myapp", "level": "warn", "host": "vm", "message": "hello world",
				"ts": "2026-11-30T13:09:33.354Z", "attrs": map[string]any{
					"procid": "42", "msgid": "MID1", "facility": "local3",
					"timeQuality.tzKnown": "1", "timeQuality.isSynced": "0", "ex@32473.k": "v 1", "ex@32473.n": "2"}},
		},
		{
			"5424 all nil, empty message, missing app-name",
			`<11>1 - - - - - -`,
			map[string]any{"service": "unknown", "level": "error", "message": "-", "ts": nowTS,
				"attrs": map[string]any{"facility": "user"}},
		},
		{
			"5424 BOM and trailing newline",
			"<15>1 2026-11-30T14:09:33Z h a - - - \xef\xbb\xbfbom msg\r\n",
			map[string]any{"service": "a", "level": "debug", "host": "h", "message": "bom msg",
				"ts": "2026-11-30T14:09:33.000Z", "attrs": map[string]any{"facility": "user"}},
		},
		{
			"3164 as logger sends it",
			`<155>Nov 30 13:09:33 vm myapp[11460]: hello 3164`,
			map[string]any{"service": "myapp", "level": "error", "host": "vm", "message": "hello 3164",
				"ts": "2026-11-30T13:09:33.000Z", "attrs": map[string]any{"facility": "local3", "procid": "11460"}},
		},
		{
			"3164 stamp from last year",
			`<0>Dec 31 23:59:59 vm kernel: panic`,
			map[string]any{"service": "kernel", "level": "fatal", "host": "vm", "message": "panic",
				"ts": "2025-12-31T23:59:59.000Z", "attrs": map[string]any{"facility": "kern"}},
		},
		{
			"3164 with RFC 3339 timestamp (RSYSLOG_ForwardFormat)",
			`<13>2026-11-30T14:00:00.123456+00:00 host tag[123]: msg`,
			map[string]any{"service": "tag", "level": "info", "host": "host", "message": "msg",
				"ts": "2026-11-30T14:00:00.123Z", "attrs": map[string]any{"facility": "user", "procid": "123"}},
		},
		{
			// rsyslog forwarding an RFC 5424 input: its syslogtag has no
			// colon, so the tag ends at "]" and a space.
			"RSYSLOG_ForwardFormat of a 5424 input (tag without colon)",
			`<128>2026-11-30T14:00:00.123456+00:00 web-0 checkout[1000] payment 00000`,
			map[string]any{"service": "checkout", "level": "fatal", "host": "web-0", "message": "payment 00000",
				"ts": "2026-11-30T14:00:00.123Z", "attrs": map[string]any{"facility": "local0", "procid": "1000"}},
		},
		{
			"3164 without header: the text is the message",
			`<14>disk full on /var`,
			map[string]any{"service": "unknown", "level": "info", "message": "disk full on /var", "ts": nowTS,
				"attrs": map[string]any{"facility": "user"}},
		},
		{
			"3164 starting with a number is not 5424",
			`<14>1 thing happened`,
			map[string]any{"service": "unknown", "level": "info", "message": "1 thing happened", "ts": nowTS,
				"attrs": map[string]any{"facility": "user"}},
		},
		{
			"5424 timestamp out of app_logs range",
			`<14>1 2200-01-01T00:00:00Z h a - - - m`,
			map[string]any{"service": "a", "level": "info", "host": "h", "message": "m", "ts": nowTS,
				"attrs": map[string]any{"facility": "user"}},
		},
	}
	stream := testkit.Registry(t).Stream(Stream)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ToEvent([]byte(c.line), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
			if _, ferrs := stream.Validate(got); len(ferrs) > 0 {
				t.Fatalf("not a valid app_logs event: %v", ferrs)
			}
		})
	}
}

func TestToEventLevels(t *testing.T) {
	want := []string{"fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"}
	for sev, lvl := range want {
		for _, line := range []string{
			"<" + strconv.Itoa(16*8+sev) + ">1 - h a - - - m",
			"<" + strconv.Itoa(16*8+sev) + ">Nov 30 13:09:33 h a: m",
		} {
			ev, err := ToEvent([]byte(line), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if ev["level"] != lvl {
				t.Errorf("%s: level %v, want %s", line, ev["level"], lvl)
			}
			if f := ev["attrs"].(map[string]any)["facility"]; f != "local0" {
				t.Errorf("%s: facility %v", line, f)
			}
		}
	}
}

func TestToEventRejects(t *testing.T) {
	for _, line := range []string{
		"", "plain text", "\x00\x01\xff\xfe garbage", "<>x", "<192>x", "<-1>x", "<1234>x", "<13",
		`<13>1 - - - - - [bad`, `<13>1 2026-13-45T00:00:00Z h a - - - m`,
	} {
		if ev, err := ToEvent([]byte(line), testNow); !errors.Is(err, ErrUnparsable) {
			t.Errorf("%q: got %v, %v; want ErrUnparsable", line, ev, err)
		}
	}
}

func TestToEventBounds(t *testing.T) {
	var sd strings.Builder
	sd.WriteString("[big")
	for i := range 100 {
		fmt.Fprintf(&sd, " p%03d=\"%s\"", i, strings.Repeat("v", 5000))
	}
	sd.WriteString("]")
	line := "<14>1 - h " + strings.Repeat("a", 48) + " - - " + sd.String() + " " + strings.Repeat("x", 100_000)
	ev, err := ToEvent([]byte(line), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, ferrs := testkit.Registry(t).Stream(Stream).Validate(ev); len(ferrs) > 0 {
		t.Fatalf("not a valid app_logs event: %v", ferrs)
	}
	attrs := ev["attrs"].(map[string]any)
	if len(attrs) != 64 || attrs["facility"] != "user" || attrs["big.p000"] == nil {
		t.Fatalf("attrs: %d entries, facility %v", len(attrs), attrs["facility"])
	}
	if n := len(ev["message"].(string)); n != 65536 {
		t.Fatalf("message of %d bytes", n)
	}
}
