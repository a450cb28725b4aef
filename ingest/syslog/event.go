package syslog

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/common"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/sluicehq/sluice/ingest"
	"github.com/sluicehq/sluice/schemas"
)

// Stream is the stream every syslog message is mapped onto.
const Stream = "app_logs"

// Bounds of the app_logs schema (schemas/app_logs.yaml). ToEvent cuts
// values to them so that a well-formed syslog message never fails
// validation for its length: a long line keeps its start rather than being
// dead-lettered whole.
const (
	maxService  = 256
	maxHost     = 256
	maxMessage  = 65536
	maxAttrs    = 64
	maxAttrText = 4096
)

// EmptyMessage is the message of a syslog line whose MSG is empty: app_logs
// requires a non-empty message, and "-" is syslog's own NILVALUE.
const EmptyMessage = "-"

// UnknownService is the service of a message without APP-NAME (or TAG).
const UnknownService = "unknown"

// ErrUnparsable wraps every reason ToEvent gives for a line it cannot map;
// callers dead-letter the line with the error's text.
var ErrUnparsable = errors.New("syslog")

// The go-syslog machines keep parse state, so each goroutine borrows its
// own. RFC 5424 is parsed strictly (a broken structured-data block is an
// error to dead-letter, not a silently shortened message). RFC 3164 is a
// description of practice rather than a grammar, so it is parsed in best
// effort with RFC 3339 timestamps (rsyslog's RSYSLOG_ForwardFormat, what
// omrelp and omfwd send) and fractional seconds accepted.
var (
	machines5424 = sync.Pool{New: func() any { return rfc5424.NewMachine() }}
	machines3164 = sync.Pool{New: func() any {
		return rfc3164.NewMachine(rfc3164.WithBestEffort(), rfc3164.WithRFC3339(), rfc3164.WithSecondFractions())
	}}
)

// ToEvent maps one syslog message (without its transport framing) onto an
// app_logs event, received at now:
//
//   - APP-NAME (RFC 3164: TAG) -> service, "unknown" when absent;
//   - severity -> level: 0-2 fatal, 3 error, 4 warn, 5-6 info, 7 debug;
//   - HOSTNAME -> host (left out when absent);
//   - MSG -> message ("-" when empty; a leading UTF-8 BOM is dropped);
//   - TIMESTAMP -> ts, RFC 3339 with milliseconds in UTC; now when absent
//     or outside what app_logs stores (1970 to 2105). An RFC 3164 stamp has
//     no year and no zone: it is read as UTC in the year that puts it at
//     most a day after now;
//   - attrs: procid (PROCID, or the [pid] of a 3164 TAG), msgid, facility
//     (the keyword as `logger -p` spells it: kern, user, ..., local7), and
//     "<sd-id>.<param>" for each structured-data parameter.
//
// The format is told per message: after the PRI, a version "1" followed by
// a space and a timestamp or "-" is RFC 5424, anything else RFC 3164.
// Trailing CR, LF and NUL bytes are ignored. Values longer than app_logs
// allows are cut (service and host to 256 bytes, message to 64 KiB, an
// attribute to 4 KiB) and only the first 64 attributes in name order are
// kept (procid, msgid and facility first), so a well-formed message always
// makes a valid event. The error, wrapping ErrUnparsable, says why a line
// is not syslog (no or bad PRI, a broken RFC 5424 header or structured
// data).
func ToEvent(line []byte, now time.Time) (map[string]any, error) {
	line = bytes.TrimRight(line, "\r\n\x00")
	pri, rest, err := splitPRI(line)
	if err != nil {
		return nil, err
	}
	if looks5424(rest) {
		return from5424(line, now)
	}
	return from3164(line, rest, pri, now)
}

// EventID is the event_id the collectors derive from a raw line (SPEC:
// "Identity of redelivered events"), so that a resend counts once.
func EventID(line []byte) string { return ingest.DeriveID(line) }

// AddLine maps line with ToEvent and adds it to b, with the derived
// event_id when deriveID is set (a random one otherwise). A line that does
// not parse is rejected with the reason, after context when that is not
// empty (and dead-lettered when b's origin asks for it); parsed says which,
// for the callers' metrics. The error is only for a full batch
// (ingest.ErrTooManyEvents). The syslog and RELP collectors both add their
// lines with it.
func AddLine(b *ingest.Batch, line []byte, now time.Time, deriveID bool, context string) (parsed bool, err error) {
	ev, err := ToEvent(line, now)
	if err != nil {
		reason := err.Error()
		if context != "" {
			reason = context + ": " + reason
		}
		return false, b.Reject(line, reason)
	}
	id := ""
	if deriveID {
		id = EventID(line)
	}
	return true, b.AddWithID(ev, id)
}

// splitPRI checks "<PRI>" (1 to 3 digits, 0 to 191) and returns its value
// and what follows it.
func splitPRI(line []byte) (uint8, []byte, error) {
	if len(line) == 0 || line[0] != '<' {
		return 0, nil, fmt.Errorf("%w: no PRI: a message starts with <0> to <191>", ErrUnparsable)
	}
	end := bytes.IndexByte(line[:min(len(line), 5)], '>')
	if end < 2 {
		return 0, nil, fmt.Errorf("%w: bad PRI: expected <0> to <191>", ErrUnparsable)
	}
	n, err := strconv.Atoi(string(line[1:end]))
	if err != nil || n < 0 || n > 191 || line[1] == '+' || line[1] == '-' {
		return 0, nil, fmt.Errorf("%w: bad PRI %q: expected 0 to 191", ErrUnparsable, schemas.Truncate(string(line[1:end]), 8))
	}
	return uint8(n), line[end+1:], nil
}

// looks5424 reports whether the text after the PRI starts like an RFC 5424
// header: VERSION SP (TIMESTAMP | "-"). A 3164 message whose text happens
// to start with "1 " does not go on with a date or a dash.
func looks5424(rest []byte) bool {
	i := 0
	for i < len(rest) && i < 3 && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || rest[0] == '0' || i+1 >= len(rest) || rest[i] != ' ' {
		return false
	}
	c := rest[i+1]
	return c == '-' || (c >= '0' && c <= '9')
}

func from5424(line []byte, now time.Time) (map[string]any, error) {
	m := machines5424.Get().(gosyslog.Machine)
	parsed, err := m.Parse(line)
	machines5424.Put(m)
	if err != nil {
		return nil, fmt.Errorf("%w: RFC 5424: %v", ErrUnparsable, err)
	}
	msg, ok := parsed.(*rfc5424.SyslogMessage)
	if !ok || msg == nil || msg.Severity == nil {
		return nil, fmt.Errorf("%w: RFC 5424: no message", ErrUnparsable)
	}
	n := 0
	if msg.StructuredData != nil {
		for _, params := range *msg.StructuredData {
			n += len(params)
		}
	}
	ev := baseEvent(&msg.Base, now, min(n, maxAttrs))
	if n > 0 {
		addStructuredData(ev["attrs"].(map[string]any), *msg.StructuredData)
	}
	return ev, nil
}

func from3164(line, rest []byte, pri uint8, now time.Time) (map[string]any, error) {
	m := machines3164.Get().(gosyslog.Machine)
	parsed, err := m.Parse(line)
	machines3164.Put(m)
	msg, _ := parsed.(*rfc3164.SyslogMessage)
	if err != nil || msg == nil || msg.Timestamp == nil {
		// No header the parser knows ("<13>disk full"): in best effort,
		// as rsyslog and syslog-ng do, the whole text is the message.
		text := string(rest)
		msg = &rfc3164.SyslogMessage{}
		msg.ComputeFromPriority(pri)
		msg.Message = &text
	}
	fixColonlessTag(msg)
	if msg.Timestamp != nil && msg.Timestamp.Year() == 0 {
		t := fixYear(*msg.Timestamp, now)
		msg.Timestamp = &t
	}
	return baseEvent(&msg.Base, now, 0), nil
}

// fixColonlessTag mends what the best-effort parser makes of "tag[pid] msg"
// without the colon, which is how rsyslog forwards (RSYSLOG_ForwardFormat) a
// message that came in as RFC 5424: it keeps the procid but leaves "pid] "
// at the start of the message.
func fixColonlessTag(msg *rfc3164.SyslogMessage) {
	if msg.ProcID == nil || msg.Message == nil {
		return
	}
	rest, ok := strings.CutPrefix(*msg.Message, *msg.ProcID+"]")
	if !ok {
		return
	}
	rest = strings.TrimPrefix(rest, " ")
	msg.Message = &rest
}

// fixYear places a yearless RFC 3164 stamp in the year that makes it at
// most a day later than now: a message stamped Dec 31 and received on
// Jan 1 belongs to the year before.
func fixYear(t, now time.Time) time.Time {
	now = now.UTC()
	y := time.Date(now.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	if y.After(now.Add(24 * time.Hour)) {
		y = y.AddDate(-1, 0, 0)
	}
	return y
}

// baseEvent maps the fields RFC 5424 and RFC 3164 share.
func baseEvent(m *gosyslog.Base, now time.Time, sdParams int) map[string]any {
	// Sized for every field: a map that grows costs more than the parse.
	ev := make(map[string]any, 6)
	ev["service"] = UnknownService
	if m.Appname != nil && *m.Appname != "" {
		ev["service"] = schemas.Cut(*m.Appname, maxService)
	}
	ev["level"] = level(*m.Severity)
	ev["ts"] = timestamp(m.Timestamp, now)
	if m.Hostname != nil && *m.Hostname != "" {
		ev["host"] = schemas.Cut(*m.Hostname, maxHost)
	}
	ev["message"] = EmptyMessage
	if m.Message != nil {
		text := strings.TrimPrefix(*m.Message, "\xef\xbb\xbf") // a UTF-8 BOM
		if text != "" {
			ev["message"] = schemas.Cut(text, maxMessage)
		}
	}
	attrs := make(map[string]any, 3+sdParams)
	if m.ProcID != nil {
		attrs["procid"] = schemas.Cut(*m.ProcID, maxAttrText)
	}
	if m.MsgID != nil {
		attrs["msgid"] = schemas.Cut(*m.MsgID, maxAttrText)
	}
	if m.Facility != nil {
		attrs["facility"] = facility(*m.Facility)
	}
	ev["attrs"] = attrs
	return ev
}

// addStructuredData adds "<sd-id>.<param>" attributes up to the schema's
// bound on entries; when there are more, the first in name order are kept,
// so that a resend maps the same way.
func addStructuredData(attrs map[string]any, sd map[string]map[string]string) {
	n := 0
	for _, params := range sd {
		n += len(params)
	}
	if len(attrs)+n <= maxAttrs {
		// The common case: everything fits, and order does not matter.
		for id, params := range sd {
			for p, v := range params {
				if k := id + "." + p; attrs[k] == nil {
					attrs[k] = schemas.Cut(v, maxAttrText)
				}
			}
		}
		return
	}
	type kv struct{ k, v string }
	all := make([]kv, 0, n)
	for id, params := range sd {
		for p, v := range params {
			all = append(all, kv{id + "." + p, v})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].k < all[j].k })
	for _, e := range all {
		if len(attrs) >= maxAttrs {
			return
		}
		if _, taken := attrs[e.k]; !taken {
			attrs[e.k] = schemas.Cut(e.v, maxAttrText)
		}
	}
}

// level maps a syslog severity onto app_logs' levels.
func level(severity uint8) string {
	switch {
	case severity <= 2:
		return "fatal"
	case severity == 3:
		return "error"
	case severity == 4:
		return "warn"
	case severity <= 6:
		return "info"
	}
	return "debug"
}

// facility names a facility code as `logger -p` and syslog.conf do.
func facility(code uint8) string {
	if name, ok := common.FacilityKeywords[code]; ok {
		return name
	}
	return strconv.Itoa(int(code))
}

// timestamp formats the message's time, or now when it has none or one
// that app_logs cannot store.
func timestamp(t *time.Time, now time.Time) string {
	if t != nil {
		u := t.UTC()
		if u.Year() >= 1970 && u.Year() <= 2105 {
			return u.Format(schemas.TimeLayout)
		}
	}
	return now.UTC().Format(schemas.TimeLayout)
}
