package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/internal/testkit"
)

// slowStack is a collector behind the real Server, on a loopback port,
// producing to an embedded Kafka-protocol broker.
type slowStack struct {
	c    *Collector
	reg  *prometheus.Registry
	addr string
}

func startSlowStack(t *testing.T, grace time.Duration, maxConns int) *slowStack {
	t.Helper()
	k := testkit.StartKafka(t)
	reg := prometheus.NewRegistry()
	c := newTestCollector(t, testkit.NewKafkaProducer(t, k.Brokers), func(cfg *testConfig) {
		cfg.reg = reg
		cfg.http.BodyGrace = grace
	})
	srv, err := NewServer(ServerConfig{Handler: c, BodyGrace: grace, MaxConnections: maxConns, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return &slowStack{c: c, reg: reg, addr: serve(t, srv)}
}

// serve serves srv on a free loopback port until the test ends, and
// returns its address.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// stall stalls an upload to the collector after sent bytes of its body.
func (s *slowStack) stall(t *testing.T, sent int) net.Conn {
	t.Helper()
	return testkit.StallUpload(t, s.addr, "/v1/streams/iot_telemetry/events", sent)
}

func (s *slowStack) post(client *http.Client, body string) (int, error) {
	resp, err := client.Post("http://"+s.addr+"/v1/streams/iot_telemetry/events", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Many uploads stalled part-way through their body (twice the parsing
// slots) while producers keep posting: every producer's request is
// accepted, because a stalled upload holds no parsing slot.
func TestStalledBodiesDoNotLockOutProducers(t *testing.T) {
	// A grace far longer than the test: the stalled uploads stay stalled
	// throughout, and the rate is not what frees the slots here.
	s := startSlowStack(t, time.Minute, 0)
	const stalled = 2 * DefaultMaxParsing
	for range stalled / 2 {
		s.stall(t, 0)   // headers only
		s.stall(t, 100) // and a tenth of the body
	}
	testkit.Eventually(t, 10*time.Second, "stalled uploads in the handler", func() bool {
		return testkit.Metric(t, s.reg, "sluice_ingest_inflight_requests", nil) >= stalled
	})

	const producers, posts = 8, 10
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for i := range posts {
				body := fmt.Sprintf(`{"device_id":"d-%d","ts":1795514400000,"metrics":{"seq":%d}}`, p, i)
				code, err := s.post(client, body)
				if err != nil || code != http.StatusAccepted {
					t.Errorf("producer %d post %d: %d, %v; want 202", p, i, code, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := s.c.parsing.InFlight() + s.c.smallParsing.InFlight(); got != 0 {
		t.Errorf("stalled uploads hold %d parsing slots, want 0", got)
	}
	if got := testkit.Metric(t, s.reg, "sluice_ingest_inflight_requests", nil); got < stalled {
		t.Errorf("%v requests in the handler after the producers, want the %d stalled ones still there", got, stalled)
	}
}

// An upload that sends no body, or stops part-way, is answered 408 once
// its grace is over, its connection closed, and it is counted.
func TestSlowBodyAnswered408(t *testing.T) {
	s := startSlowStack(t, 300*time.Millisecond, 0)
	for _, sent := range []int{0, 100} {
		conn := s.stall(t, sent)
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%d bytes sent: read response: %v", sent, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "too slowly") {
			t.Errorf("%d bytes sent: %d %s, want 408 saying the body came too slowly", sent, resp.StatusCode, b)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%d bytes sent: after the 408 the connection is open (%v), want it closed", sent, err)
		}
	}
	if got := testkit.Metric(t, s.reg, "sluice_ingest_slow_bodies_total", nil); got != 2 {
		t.Errorf("sluice_ingest_slow_bodies_total = %v, want 2", got)
	}
	if got := testkit.Metric(t, s.reg, "sluice_ingest_requests_total", map[string]string{"code": "408"}); got != 2 {
		t.Errorf("requests answered 408: %v, want 2", got)
	}
}

// Beyond the connection cap the server accepts no more connections: a
// request on one more waits until a connection closes, then is served.
func TestConnectionCap(t *testing.T) {
	s := startSlowStack(t, time.Minute, 2)
	first := s.stall(t, 0)
	s.stall(t, 0)
	testkit.Eventually(t, 10*time.Second, "two connections open", func() bool {
		return testkit.Metric(t, s.reg, "sluice_http_connections_open", nil) == 2
	})
	done := make(chan int, 1)
	go func() {
		code, err := s.post(&http.Client{Timeout: 30 * time.Second}, `{"device_id":"d","ts":1795514400000,"metrics":{"x":1}}`)
		if err != nil {
			t.Errorf("post: %v", err)
		}
		done <- code
	}()
	select {
	case code := <-done:
		t.Fatalf("a third connection was served (%d) while two were open at a cap of 2", code)
	case <-time.After(300 * time.Millisecond):
	}
	first.Close()
	if code := <-done; code != http.StatusAccepted {
		t.Errorf("post once a connection closed: %d, want 202", code)
	}
	if got := testkit.Metric(t, s.reg, "sluice_http_max_connections", nil); got != 2 {
		t.Errorf("sluice_http_max_connections = %v, want 2", got)
	}
}

// At the connection cap with kept-alive connections idle, a new client is
// served at once: the server closes the connection idle the longest, and
// its client connects again for its next request.
func TestConnectionCapClosesIdle(t *testing.T) {
	s := startSlowStack(t, time.Minute, 2)
	const event = `{"device_id":"d","ts":1795514400000,"metrics":{"x":1}}`
	clients := make([]*http.Client, 3)
	for i := range clients {
		// A transport each: a connection each, kept alive.
		clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
		t.Cleanup(clients[i].CloseIdleConnections)
	}
	for _, c := range clients[:2] {
		if code, err := s.post(c, event); err != nil || code != http.StatusAccepted {
			t.Fatalf("post: %d, %v", code, err)
		}
	}
	testkit.Eventually(t, 10*time.Second, "two connections open", func() bool {
		return testkit.Metric(t, s.reg, "sluice_http_connections_open", nil) == 2
	})
	start := time.Now()
	if code, err := s.post(clients[2], event); err != nil || code != http.StatusAccepted {
		t.Fatalf("post on a third connection: %d, %v", code, err)
	}
	// Well within the idle timeout (2 minutes) it would otherwise wait.
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("the third client waited %v", waited)
	}
	if got := testkit.Metric(t, s.reg, "sluice_http_idle_connections_closed_total", nil); got != 1 {
		t.Errorf("sluice_http_idle_connections_closed_total = %v, want 1", got)
	}
	// The client whose connection was closed posts again on a new one.
	if code, err := s.post(clients[0], event); err != nil || code != http.StatusAccepted {
		t.Errorf("post again from the first client: %d, %v", code, err)
	}
}
