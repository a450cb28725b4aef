package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Syslog framing and mapping. Lines are RFC 5424 with RFC 6587 octet
// counting; the facility is local0, and a level maps to the severity that
// Sluice maps back to the same level (trace has none and becomes debug).
const (
	syslogFacility = 16 // local0
	// syslogSDID names loadgen's structured data; 32473 is the private
	// enterprise number reserved for examples (RFC 5612).
	syslogSDID = "loadgen@32473"
)

var syslogSeverity = map[string]int{"fatal": 2, "error": 3, "warn": 4, "info": 6, "debug": 7, "trace": 7}

// logEvent is an app_logs event as the generator renders it.
type logEvent struct {
	EventID string            `json:"event_id"`
	TS      string            `json:"ts"`
	Service string            `json:"service"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Host    string            `json:"host"`
	TraceID string            `json:"trace_id"`
	Attrs   map[string]string `json:"attrs"`
}

// appendSyslog renders b's app_logs events as octet-counted RFC 5424
// lines. Each is rendered as for HTTP, then mapped: APP-NAME the service,
// HOSTNAME the host, severity the level; the event_id, trace_id and attrs
// go into structured data, which also makes every line unique (Sluice
// derives event_ids from the line, and identical lines count once).
func (g *generator) appendSyslog(buf []byte, w *worker, b batch, now time.Time) ([]byte, error) {
	for i := range b.n {
		ts := now.Add(-time.Duration(w.rng.IntN(250)) * time.Millisecond)
		w.line = g.appendLog(w.line[:0], b.first+int64(i), ts, w.rng)
		var ev logEvent
		if err := json.Unmarshal(w.line, &ev); err != nil {
			return buf, fmt.Errorf("loadgen: render syslog line: %w", err)
		}
		w.frame = appendRFC5424(w.frame[:0], &ev)
		buf = strconv.AppendInt(buf, int64(len(w.frame)), 10)
		buf = append(buf, ' ')
		buf = append(buf, w.frame...)
	}
	return buf, nil
}

// appendRFC5424 renders one event as an RFC 5424 message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG.
func appendRFC5424(b []byte, ev *logEvent) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(syslogFacility*8+syslogSeverity[ev.Level]), 10)
	b = append(b, ">1 "...)
	b = append(b, ev.TS...)
	b = append(b, ' ')
	b = append(b, ev.Host...)
	b = append(b, ' ')
	b = append(b, ev.Service...)
	b = append(b, " - - ["...)
	b = append(b, syslogSDID...)
	b = appendSDParam(b, "event_id", ev.EventID)
	if ev.TraceID != "" {
		b = appendSDParam(b, "trace_id", ev.TraceID)
	}
	for _, k := range []string{"region", "user_id", "version"} { // the generator's attrs
		if v, ok := ev.Attrs[k]; ok {
			b = appendSDParam(b, k, v)
		}
	}
	b = append(b, "] "...)
	return append(b, ev.Message...)
}

// sdEscaper escapes what RFC 5424 requires in a PARAM-VALUE.
var sdEscaper = strings.NewReplacer(`"`, `\"`, `\`, `\\`, `]`, `\]`)

func appendSDParam(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = append(b, sdEscaper.Replace(value)...)
	return append(b, '"')
}

// syslogWorker is one TCP connection: it writes a batch of lines and
// counts them acknowledged once written, since syslog over TCP has no
// acknowledgement. A failed write is retried over a new connection with
// the same bytes, so Sluice's line-derived event_ids count a line the
// collector got twice once.
func (r *runner) syslogWorker() {
	w := newWorker()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	seed := fnvString(r.cfg.RunID)
	for {
		b, ok := r.next()
		if !ok {
			return
		}
		w.pcg.Seed(seed, b.index)
		body, err := r.gen.appendSyslog(w.body[:0], w, b, time.Now())
		w.body = body
		if err != nil {
			r.st.sent[b.stream].Add(int64(b.n))
			r.fail(b, "render", err.Error())
			continue
		}
		r.st.sent[b.stream].Add(int64(b.n))
		r.deliver(w, b, func() (outcome, time.Duration) { return r.syslogAttempt(&conn, w, b, body) })
	}
}

// syslogAttempt writes body once over *conn, dialling it first if needed.
func (r *runner) syslogAttempt(conn *net.Conn, w *worker, b batch, body []byte) (outcome, time.Duration) {
	if r.reqCtx.Err() != nil {
		return aborted, 0
	}
	if *conn == nil {
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(r.reqCtx, "tcp", r.cfg.SyslogAddr)
		if err != nil {
			if r.reqCtx.Err() != nil {
				return aborted, 0
			}
			r.attemptFailed("connection")
			if r.sample("syslog: " + err.Error()) {
				r.log.Warn("loadgen cannot connect to the syslog listener; retrying", "err", err)
			}
			return retry, 0
		}
		*conn = c
	}
	r.st.requests.Add(1)
	start := time.Now()
	// The deadline stands in for a request timeout: a collector that stops
	// reading (backpressure) holds the write until then.
	_ = (*conn).SetWriteDeadline(start.Add(r.cfg.Timeout))
	c := *conn
	// Closing is how a write blocked by a collector that does not read
	// ends when the run's requests are cut off.
	stop := context.AfterFunc(r.reqCtx, func() { c.Close() })
	_, err := c.Write(body)
	stop()
	lat := time.Since(start)
	if err != nil {
		(*conn).Close()
		*conn = nil
		if r.reqCtx.Err() != nil {
			return aborted, 0
		}
		cause := "connection"
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			cause = "timeout"
		}
		r.attemptFailed(cause)
		return retry, 0
	}
	r.recordLatency(lat)
	r.allAcked(w, b)
	return done, 0
}
