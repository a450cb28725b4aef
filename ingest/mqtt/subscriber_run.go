package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
)

// Run connects, subscribes and hands messages to the Handler until ctx
// ends; it reconnects (with jittered exponential backoff) whenever the
// connection drops. When ctx ends it stops taking messages, gives those in
// flight Grace to finish, flushes their acknowledgements and disconnects;
// what is left unacknowledged the broker redelivers on the next
// connection, and derived event ids make that harmless. It returns an error
// before ctx ends only when the broker refuses a subscription or a message
// cannot be handled for a reason other than shutdown.
func (s *Subscriber) Run(ctx context.Context) error {
	s.order = make(chan *job, s.cfg.MaxInflight)
	s.work = make(chan *job, s.cfg.MaxInflight)
	s.stopped = make(chan struct{})
	s.fatal = make(chan error, 1)
	handleCtx, cancelHandle := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandle()
	s.handleCtx = handleCtx

	// The connection outlives ctx by the grace period, so that the
	// acknowledgements of messages finished in it still reach the broker.
	connCtx, cancelConn := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConn()
	cm, err := autopaho.NewConnection(connCtx, s.clientConfig(connCtx))
	if err != nil {
		return fmt.Errorf("mqtt subscriber: %w", err)
	}
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		s.ack()
	}()
	var workers sync.WaitGroup
	n := min(s.cfg.MaxInflight, maxWorkers)
	group := (s.cfg.MaxInflight + n - 1) / n
	for range n {
		workers.Go(func() { s.handle(group) })
	}
	s.log.Info("mqtt subscriber started", "filters", s.Filters(), "max_inflight", s.cfg.MaxInflight,
		"session_expiry", s.cfg.SessionExpiry)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-s.fatal:
	}
	s.shutdown(cancelHandle)
	// No sender is left: shutdown waited for every message received.
	close(s.work)
	close(s.order)
	workers.Wait()
	<-ackerDone
	// paho sends acknowledged messages' PUBACKs on its own timer: give it
	// a few ticks before the connection closes.
	time.Sleep(5 * s.cfg.AckInterval)
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cm.Disconnect(dctx); err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		s.log.Warn("mqtt disconnect", "err", err)
	}
	cancelConn()
	<-cm.Done()
	s.bg.Wait()
	s.metrics.connected.Set(0)
	s.log.Info("mqtt subscriber stopped")
	return runErr
}

// shutdown stops new messages from being handled and waits for those in
// flight, cancelling them after the grace period.
func (s *Subscriber) shutdown(cancelHandle context.CancelFunc) {
	s.mu.Lock()
	s.stopping = true
	close(s.stopped)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.msgs.Wait()
	}()
	t := time.NewTimer(s.cfg.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("mqtt messages still waiting for Kafka at shutdown: left unacknowledged for the broker to redeliver", "grace", s.cfg.Grace)
		cancelHandle()
		<-done
	}
}

// errStopping marks a message received while the subscriber stops: it is
// left unacknowledged for the broker to redeliver.
var errStopping = errors.New("mqtt subscriber stopping")

// receive is paho's callback for every PUBLISH. It runs on paho's single
// reading goroutine, so it only queues the message for the acker and a
// worker; it blocks (and so stops reading) while MaxInflight messages are
// queued, which a broker honouring the Receive Maximum never causes.
func (s *Subscriber) receive(pr paho.PublishReceived) (bool, error) {
	s.mu.Lock()
	if s.stopping {
		// Not acknowledged: the broker redelivers it to the next session.
		s.mu.Unlock()
		return true, nil
	}
	s.msgs.Add(1) // done by the worker, or below if none takes it
	s.mu.Unlock()
	j := &job{client: pr.Client, pub: pr.Packet, done: make(chan struct{})}
	select {
	case s.order <- j:
		// In flight from here until the acker is done with it, waiting for
		// a worker included.
		s.cfg.Handler.metrics.inflight.Inc()
	case <-s.stopped:
		s.msgs.Done()
		return true, nil
	}
	select {
	case s.work <- j:
	case <-s.stopped:
		j.err = errStopping
		close(j.done)
		s.msgs.Done()
	}
	return true, nil
}

// maxWorkers bounds the workers that call the Handler. Each takes the
// messages waiting at once, up to its share of MaxInflight, and commits
// them to Kafka together: a few long-lived workers with full groups cost
// far less (goroutine stacks to grow and scan, produce calls) than a
// worker per message in flight, and still keep the producer's batches full
// while each group waits for Kafka.
const maxWorkers = 16

// handle is one of the workers: it takes one message, then whatever else
// is waiting (up to group), and hands them to the Handler as one commit.
func (s *Subscriber) handle(group int) {
	jobs := make([]*job, 0, group)
	msgs := make([]Message, 0, group)
	for j := range s.work {
		jobs = append(jobs[:0], j)
	more:
		for len(jobs) < group {
			select {
			case j, ok := <-s.work:
				if !ok {
					break more
				}
				jobs = append(jobs, j)
			default:
				break more
			}
		}
		msgs = msgs[:0]
		for _, j := range jobs {
			msgs = append(msgs, Message{Topic: j.pub.Topic, Payload: j.pub.Payload})
		}
		err := s.cfg.Handler.HandleAll(s.handleCtx, msgs)
		for _, j := range jobs {
			j.err = err
			close(j.done)
			s.msgs.Done()
		}
	}
}

// ack acknowledges handled messages in the order they were received, until
// order is closed. paho would hold back an acknowledgement given out of
// order until the earlier ones are given too, but it finds each in a list
// of all unacknowledged messages: acking the oldest keeps that search at
// its first element. A message that could not be handled is never
// acknowledged, and so neither is any later one on the same connection;
// unless that is shutdown, Run fails and the broker redelivers them all.
func (s *Subscriber) ack() {
	var failed bool
	for j := range s.order {
		<-j.done
		s.cfg.Handler.metrics.inflight.Dec()
		if failed {
			continue
		}
		if j.err != nil {
			failed = true
			if s.handleCtx.Err() == nil {
				select {
				case s.fatal <- fmt.Errorf("mqtt subscriber: %w", j.err):
				default:
				}
			}
			continue
		}
		if err := j.client.Ack(j.pub); err != nil && !errors.Is(err, paho.ErrPacketNotFound) {
			s.log.Debug("mqtt ack", "topic", j.pub.Topic, "err", err)
		}
	}
}

// clientConfig is autopaho's configuration: a persistent MQTT 5 session
// with the Receive Maximum set and acknowledgements left to the acker.
func (s *Subscriber) clientConfig(ctx context.Context) autopaho.ClientConfig {
	expiry := uint32(s.cfg.SessionExpiry / time.Second)
	receiveMax := uint16(s.cfg.MaxInflight)
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{s.broker},
		TlsCfg:                        s.cfg.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         expiry,
		// Jittered so that a fleet of collectors does not reconnect in
		// step after a broker restart: a random delay in [250ms, max],
		// max growing from 2s to 30s.
		ReconnectBackoff:  autopaho.NewExponentialBackoff(250*time.Millisecond, 30*time.Second, 2*time.Second, 2),
		ConnectTimeout:    10 * time.Second,
		AttemptConnection: dial,
		ConnectUsername:   s.cfg.Username,
		ConnectPassword:   s.cfg.Password,
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &receiveMax
			return cp, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) { s.connectionUp(ctx, cm, ca) },
		OnConnectionDown: func() bool {
			s.metrics.connected.Set(0)
			s.metrics.disconnects.Inc()
			s.log.Warn("mqtt connection lost; reconnecting")
			return true
		},
		OnConnectError: func(err error) { s.log.Warn("mqtt connect failed; retrying", "err", err) },
		Errors:         slogPaho{s.log, slog.LevelWarn},
		PahoErrors:     slogPaho{s.log, slog.LevelDebug},
		ClientConfig: paho.ClientConfig{
			ClientID:                   s.cfg.ClientID,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){s.receive},
			EnableManualAcknowledgment: true,
			SendAcksInterval:           s.cfg.AckInterval,
			OnClientError:              func(err error) { s.log.Debug("mqtt client error", "err", err) },
		},
	}
}

// dial connects to the broker as autopaho would (TCP, or TLS for ssl://),
// through a bufferedConn.
func dial(ctx context.Context, cfg autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	var (
		c   net.Conn
		err error
	)
	switch strings.ToLower(u.Scheme) {
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		d := tls.Dialer{Config: cfg.TlsCfg}
		c, err = d.DialContext(ctx, "tcp", u.Host)
	default:
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}, nil
}

// Write coalescing of bufferedConn: what is written within writeDelay goes
// out in one system call, or at once when writeBufferBytes are waiting.
const (
	writeDelay       = 200 * time.Microsecond
	writeBufferBytes = 32 << 10
)

// bufferedConn is the subscriber's connection with both directions
// buffered. paho reads every packet's fixed header a byte at a time and
// writes every PUBACK on its own: unbuffered, a system call each, which
// was a third of the collector's CPU at 30,000 messages/s. A write is
// accepted into the buffer and sent within writeDelay; an error sending it
// fails the next Write (the PUBACK is then lost with the connection, and
// the broker redelivers the message, which dedupe makes harmless).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	w       []byte
	err     error       // the first failed send; every later Write fails
	timer   *time.Timer // sends w after writeDelay
	pending bool        // the timer is set
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.w = append(c.w, p...)
	if len(c.w) >= writeBufferBytes {
		if err := c.sendLocked(); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if !c.pending {
		c.pending = true
		if c.timer == nil {
			c.timer = time.AfterFunc(writeDelay, c.send)
		} else {
			c.timer.Reset(writeDelay)
		}
	}
	return len(p), nil
}

// send is the timer's: it sends what is buffered.
func (c *bufferedConn) send() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = false
	_ = c.sendLocked()
}

func (c *bufferedConn) sendLocked() error {
	if c.err != nil || len(c.w) == 0 {
		return c.err
	}
	_, err := c.Conn.Write(c.w)
	c.w = c.w[:0]
	if err != nil {
		c.err = err
	}
	return err
}

// Close sends what is buffered (a DISCONNECT, the last PUBACKs), then
// closes.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	_ = c.sendLocked()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// connectionUp subscribes on every connection: a broker that lost the
// session (expired, or restarted without persistence) has lost the
// subscriptions too. It must not block, so the SUBSCRIBE goes out from a
// goroutine that Run waits for.
func (s *Subscriber) connectionUp(ctx context.Context, cm *autopaho.ConnectionManager, ca *paho.Connack) {
	s.metrics.connected.Set(1)
	s.metrics.connects.Inc()
	s.log.Info("mqtt connected", "session_present", ca.SessionPresent)
	if ca.Properties != nil && ca.Properties.SessionExpiryInterval != nil && *ca.Properties.SessionExpiryInterval == 0 {
		s.log.Warn("the broker ends the session on disconnect: messages sent while Sluice is away will be lost")
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.subscribe(ctx, cm); err != nil {
			select {
			case s.fatal <- err:
			default:
			}
		}
	}()
}

// subscribe subscribes to every filter with QoS 1. A connection that drops
// meanwhile is logged, not fatal (the next connection subscribes again); a
// refusal by the broker is fatal, since it will not change by itself.
func (s *Subscriber) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) error {
	filters := s.Filters()
	sub := &paho.Subscribe{}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sa, err := cm.Subscribe(ctx, sub)
	if sa == nil {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("mqtt subscribe failed; retrying on the next connection", "err", err)
		}
		return nil
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 && i < len(filters) {
			return fmt.Errorf("mqtt subscriber: broker refused the subscription to %q (reason code 0x%02x; check the broker's ACL)", filters[i], code)
		}
		if code == 0 && i < len(filters) {
			s.log.Warn("mqtt broker granted QoS 0 only: messages may be lost", "filter", filters[i])
		}
	}
	s.log.Info("mqtt subscribed", "filters", filters)
	return nil
}

// slogPaho passes paho's log lines to slog.
type slogPaho struct {
	log   *slog.Logger
	level slog.Level
}

func (l slogPaho) Println(v ...any) {
	l.log.Log(context.Background(), l.level, "paho: "+fmt.Sprintln(v...))
}

func (l slogPaho) Printf(format string, v ...any) {
	l.log.Log(context.Background(), l.level, "paho: "+fmt.Sprintf(format, v...))
}

type subscriberMetrics struct {
	connected             prometheus.Gauge
	connects, disconnects prometheus.Counter
}

func newSubscriberMetrics(reg prometheus.Registerer) (*subscriberMetrics, error) {
	m := &subscriberMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "connected",
			Help: "1 while the MQTT subscriber is connected to its broker, else 0.",
		}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "connects_total",
			Help: "Connections the MQTT subscriber established (the first and every reconnection).",
		}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sluice", Subsystem: "mqtt", Name: "disconnects_total",
			Help: "Connections to the MQTT broker that were lost.",
		}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.connects, m.disconnects} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mqtt subscriber: register metrics: %w", err)
		}
	}
	return m, nil
}
