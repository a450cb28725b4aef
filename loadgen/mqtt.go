package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// MQTT 5 PUBACK reason codes loadgen tells apart: below 0x80 is success
// (0x10, no matching subscribers, included); quota exceeded is worth a
// retry; any other error is final.
const (
	pubackErrors        = 0x80
	pubackQuotaExceeded = 0x97
)

// mqttHostPort checks an MQTT broker URL, tcp://host:port or
// mqtt://host:port, and returns host:port.
func mqttHostPort(broker string) (string, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return "", fmt.Errorf("mqtt broker %q: %w", broker, err)
	}
	if (u.Scheme != "tcp" && u.Scheme != "mqtt") || u.Host == "" || u.Port() == "" {
		return "", fmt.Errorf("mqtt broker %q: want tcp://host:port (TLS is not supported by loadgen)", broker)
	}
	return u.Host, nil
}

// mqttTopics returns the topic of every device and service: the payloads
// leave device_id and service out, so Sluice's routes take them from here.
func mqttTopics(g *generator) [2][]string {
	var t [2][]string
	for _, d := range g.devices {
		// d.id is "device_id":"<name>", names being plain ASCII.
		name := string(d.id[len(`"device_id":"`) : len(d.id)-1])
		t[iotIdx] = append(t[iotIdx], "devices/"+name+"/telemetry")
	}
	for _, s := range g.services {
		t[logsIdx] = append(t[logsIdx], "services/"+s.name+"/logs")
	}
	return t
}

// mqttMessage renders b as one MQTT message from one device (or service),
// picked by the batch's seeded RNG: a JSON object for one event, else an
// array. The events are those the HTTP payload would hold, without the
// field the topic carries.
func (r *runner) mqttMessage(w *worker, b batch, now time.Time) (string, []byte) {
	g := *r.gen // a view of the fleet with one device or one service
	var i int
	var field []byte
	if b.stream == iotIdx {
		i = w.rng.IntN(len(g.devices))
		g.devices = g.devices[i : i+1]
		field = g.devices[0].id
	} else {
		i = w.rng.IntN(len(g.services))
		field = g.services[i].field
		g.services = g.services[i : i+1]
	}
	buf := w.body[:0]
	if b.n > 1 {
		buf = append(buf, '[')
	}
	for k := range b.n {
		if k > 0 {
			buf = append(buf, ',')
		}
		ts := now.Add(-time.Duration(w.rng.IntN(250)) * time.Millisecond)
		start := len(buf)
		if b.stream == iotIdx {
			buf = g.appendIoT(buf, b.first+int64(k), ts, w.rng)
		} else {
			buf = g.appendLog(buf, b.first+int64(k), ts, w.rng)
		}
		buf = cutField(buf, start, field)
	}
	if b.n > 1 {
		buf = append(buf, ']')
	}
	w.body = buf
	return r.topics[b.stream][i], buf
}

// cutField removes field and the comma after it from the event that
// starts at buf[start:]. The generator always writes a field other than
// the last this way, and no earlier field can contain its text.
func cutField(buf []byte, start int, field []byte) []byte {
	at := bytes.Index(buf[start:], field)
	if at < 0 {
		panic("loadgen: field " + string(field) + " not in event") // the generator changed
	}
	at += start
	n := copy(buf[at:], buf[at+len(field)+1:])
	return buf[:at+n]
}

// mqttWorker is one device connection: it publishes a message with QoS 1,
// waits for its PUBACK (retrying over a new connection as long as it
// takes), and only then builds the next.
func (r *runner) mqttWorker() {
	w := newWorker()
	c := &mqttConn{r: r, clientID: "loadgen-" + r.cfg.RunID + "-" + strconv.FormatInt(r.workers.Add(1), 10)}
	defer c.drop()
	seed := fnvString(r.cfg.RunID)
	for {
		b, ok := r.next()
		if !ok {
			return
		}
		w.pcg.Seed(seed, b.index)
		topic, body := r.mqttMessage(w, b, time.Now())
		r.st.sent[b.stream].Add(int64(b.n))
		r.deliver(w, b, func() (outcome, time.Duration) { return c.attempt(w, b, topic, body) })
	}
}

// mqttConn is one worker's MQTT 5 session. It belongs to the worker's
// goroutine; the goroutine watching the connection ends with drop.
type mqttConn struct {
	r        *runner
	clientID string
	client   *paho.Client
	ctx      context.Context // ends when the connection breaks or is dropped
	cancel   context.CancelFunc
}

// connect opens a clean session; the previous one, if any, is gone.
func (c *mqttConn) connect() error {
	addr, _ := mqttHostPort(c.r.cfg.MQTTBroker) // checked by withDefaults
	ctx, cancel := context.WithTimeout(c.r.reqCtx, min(c.r.cfg.Timeout, 10*time.Second))
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	cl := paho.NewClient(paho.ClientConfig{ClientID: c.clientID, Conn: conn, PacketTimeout: c.r.cfg.Timeout})
	if _, err := cl.Connect(ctx, &paho.Connect{ClientID: c.clientID, CleanStart: true, KeepAlive: 30}); err != nil {
		_ = conn.Close()
		return fmt.Errorf("connect to %s: %w", c.r.cfg.MQTTBroker, err)
	}
	c.client = cl
	c.ctx, c.cancel = context.WithCancel(c.r.reqCtx)
	// paho lets a publish wait for its PUBACK until its context ends even
	// when the connection broke; this ends it as soon as paho notices.
	go func(done <-chan struct{}, ctx context.Context, cancel context.CancelFunc) {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}(cl.Done(), c.ctx, c.cancel)
	return nil
}

// drop closes the session, so that a retry starts afresh.
func (c *mqttConn) drop() {
	if c.client == nil {
		return
	}
	_ = c.client.Disconnect(&paho.Disconnect{})
	c.cancel()
	c.client = nil
}

// attempt publishes body once and accounts for the outcome.
func (c *mqttConn) attempt(w *worker, b batch, topic string, body []byte) (outcome, time.Duration) {
	r := c.r
	if r.reqCtx.Err() != nil {
		return aborted, 0
	}
	if c.client == nil {
		if err := c.connect(); err != nil {
			if r.reqCtx.Err() != nil {
				return aborted, 0
			}
			r.attemptFailed("connection")
			if r.sample("mqtt: " + err.Error()) {
				r.log.Warn("loadgen cannot connect to the MQTT broker; retrying", "err", err)
			}
			return retry, 0
		}
	}
	r.st.requests.Add(1)
	ctx, cancel := context.WithTimeout(c.ctx, r.cfg.Timeout)
	defer cancel()
	start := time.Now()
	resp, err := c.client.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: body})
	lat := time.Since(start)
	switch {
	case resp != nil && resp.ReasonCode >= pubackErrors:
		cause := fmt.Sprintf("puback 0x%02x", resp.ReasonCode)
		r.attemptFailed(cause)
		if resp.ReasonCode == pubackQuotaExceeded {
			return retry, 0
		}
		r.fail(b, cause, fmt.Sprint(err))
		return done, 0
	case err != nil:
		if r.reqCtx.Err() != nil {
			return aborted, 0
		}
		cause := "connection"
		if errors.Is(err, context.DeadlineExceeded) {
			cause = "timeout"
		}
		r.attemptFailed(cause)
		// The session's state is unknown: retry on a new one. The
		// resend carries the same event_ids, so Sluice counts it once.
		c.drop()
		return retry, 0
	}
	r.recordLatency(lat)
	r.allAcked(w, b)
	return done, 0
}

// allAcked accounts for a batch whose every event was acknowledged, as
// protocols without per-event answers acknowledge.
func (r *runner) allAcked(w *worker, b batch) {
	if cap(w.rejected) < b.n {
		w.rejected = make([]bool, b.n)
	}
	w.rejected = w.rejected[:b.n]
	clear(w.rejected)
	r.writeAcks(w, b)
	r.st.acked[b.stream].Add(int64(b.n))
}
