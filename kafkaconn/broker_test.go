package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/kafkaconn"
)

// TestSASLOverTLS writes and reads back through each mechanism over TLS,
// on the three kinds of connection kafka-go makes: a Writer on the shared
// transport, a Reader on the dialer, and a Client's metadata request.
func TestSASLOverTLS(t *testing.T) {
	ca := testkit.NewCA(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			k := testkit.StartKafka(t, testkit.KafkaSASL(mech, "sluice", secret), testkit.KafkaTLS(ca))
			sec, err := kafkaconn.Settings{
				Files:     tlsfiles.Client{CA: ca.Path("ca.pem")},
				Mechanism: strings.ToLower(mech), Username: "sluice", Password: secret,
			}.Security()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sec.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := sec.Ping(ctx, k.Brokers); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			topic := testkit.StreamTopic("app_logs")
			w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: topic, Transport: sec.Shared(),
				RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("over " + mech)}); err != nil {
				t.Fatalf("write: %v", err)
			}
			_ = w.Close()
			md, err := sec.Client(k.Brokers, 5*time.Second).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
			if err != nil {
				t.Fatalf("metadata: %v", err)
			}
			found := false
			for _, p := range md.Topics[0].Partitions {
				r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers, Dialer: sec.Dialer("test", 5*time.Second),
					Topic: topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
				last, err := sec.Dialer("test", 5*time.Second).DialLeader(ctx, "tcp", k.Brokers[0], topic, p.ID)
				if err != nil {
					t.Fatalf("dial leader: %v", err)
				}
				end, err := last.ReadLastOffset()
				last.Close()
				if err != nil {
					t.Fatal(err)
				}
				if end > 0 {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					found = string(m.Value) == "over "+mech
				}
				r.Close()
			}
			if !found {
				t.Errorf("the message written over %s was not read back", mech)
			}
		})
	}
}

// TestRefusals checks that a wrong password, an unknown user and an
// untrusted certificate each give one permanent error line saying what
// failed and which flag to check, without the password.
func TestRefusals(t *testing.T) {
	ca, other := testkit.NewCA(t), testkit.NewCA(t)
	k := testkit.StartKafka(t, testkit.KafkaSASL("SCRAM-SHA-256", "sluice", secret), testkit.KafkaTLS(ca))
	addr := k.Brokers[0]
	for _, tc := range []struct {
		name string
		s    kafkaconn.Settings
		want string
	}{
		{"wrong password", kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}, Mechanism: "scram-sha-256", Username: "sluice", Password: "wrong-" + secret},
			`kafka: SASL authentication failed for user "sluice" (mechanism SCRAM-SHA-256) at ` + addr + `: check --kafka-sasl-username and --kafka-sasl-password-file`},
		{"unknown user", kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}, Mechanism: "scram-sha-256", Username: "nobody", Password: secret},
			`kafka: SASL authentication failed for user "nobody"`},
		{"mechanism without the user", kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}, Mechanism: "scram-sha-512", Username: "sluice", Password: secret},
			`(mechanism SCRAM-SHA-512)`},
		{"untrusted CA", kafkaconn.Settings{Files: tlsfiles.Client{CA: other.Path("ca.pem")}, Mechanism: "scram-sha-256", Username: "sluice", Password: secret},
			`kafka: TLS: the certificate of the broker at ` + addr + ` is not trusted (x509: certificate signed by unknown authority`},
	} {
		sec, err := tc.s.Security()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err = sec.Ping(ctx, k.Brokers)
		cancel()
		var kerr *kafkaconn.Error
		switch {
		case !errors.As(err, &kerr) || !kafkaconn.IsPermanent(err):
			t.Errorf("%s: %v (%T), want a permanent *kafkaconn.Error", tc.name, err, err)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %q, want it to contain %q", tc.name, err, tc.want)
		case !strings.Contains(err.Error(), ": check --kafka-"):
			t.Errorf("%s: %q names no flag to check", tc.name, err)
		case strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "\n"):
			t.Errorf("%s: %q shows the password or is not one line", tc.name, err)
		case time.Since(start) > 5*time.Second:
			t.Errorf("%s: refused after %s, want at once", tc.name, time.Since(start))
		}
		sec.Close()
	}
}

// TestPlaintextUnchanged checks that the zero Security still reaches a
// plaintext broker and that an unreachable broker is not permanent: it
// may come up, as in a compose stack.
func TestPlaintextUnchanged(t *testing.T) {
	k := testkit.StartKafka(t)
	var sec kafkaconn.Security
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sec.Ping(ctx, k.Brokers); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if sec.String() != "plaintext" {
		t.Errorf("String() = %q", sec.String())
	}
	err := sec.Ping(ctx, []string{"127.0.0.1:1"})
	if err == nil || kafkaconn.IsPermanent(err) {
		t.Errorf("Ping of a closed port: %v, want a retriable error", err)
	}
}

// TestMutualTLS checks a broker that requires a client certificate: with
// one it answers; without, the refusal is permanent and names the flags.
func TestMutualTLS(t *testing.T) {
	ca := testkit.NewCA(t)
	requireCert := func(t testing.TB) []kfake.Opt {
		cfg, err := tlsfiles.Server("--test-tls", ca.Path("server.pem"), ca.Path("server-key.pem"), ca.Path("ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return []kfake.Opt{kfake.TLS(cfg)}
	}
	k := testkit.StartKafka(t, requireCert)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	with, err := kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem"), Cert: ca.Path("client.pem"), Key: ca.Path("client-key.pem")}}.Security()
	if err != nil {
		t.Fatal(err)
	}
	if err := with.Ping(ctx, k.Brokers); err != nil {
		t.Errorf("Ping with a client certificate: %v", err)
	}
	without, err := kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}}.Security()
	if err != nil {
		t.Fatal(err)
	}
	err = without.Ping(ctx, k.Brokers)
	want := "kafka: TLS: the broker at " + k.Brokers[0] + " refused the handshake (tls: certificate required): check --kafka-tls-cert and --kafka-tls-key"
	if !kafkaconn.IsPermanent(err) || err.Error() != want {
		t.Errorf("Ping without a client certificate: %v, want the permanent %q", err, want)
	}
}

// TestClosedConnectionHint checks that a client without SASL, which a
// SASL broker hangs up on, is told what that may mean, and is retried: a
// restarting broker hangs up too.
func TestClosedConnectionHint(t *testing.T) {
	k := testkit.StartKafka(t, testkit.KafkaSASL("PLAIN", "u", secret))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := kafkaconn.Security{}.Ping(ctx, k.Brokers)
	if err == nil || kafkaconn.IsPermanent(err) || !strings.Contains(err.Error(), "does it want TLS or SASL? see --kafka-tls and --kafka-sasl-mechanism") {
		t.Errorf("Ping without SASL: %v, want a retriable error with the hint", err)
	}
}

// TestTLSMismatches checks the refusals of a TLS handshake that no wait
// will cure: a certificate for other names, and a port that does not
// answer in TLS at all.
func TestTLSMismatches(t *testing.T) {
	ca := testkit.NewCA(t)
	ca.Issue(t, "elsewhere", &x509.Certificate{DNSNames: []string{"kafka.elsewhere.example"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
	otherName := func(t testing.TB) []kfake.Opt {
		cert, err := tls.LoadX509KeyPair(ca.Path("elsewhere.pem"), ca.Path("elsewhere-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return []kfake.Opt{kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}})}
	}
	k := testkit.StartKafka(t, otherName)
	sec, err := kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}}.Security()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = sec.Ping(ctx, k.Brokers)
	want := "kafka: TLS: the certificate of the broker at " + k.Brokers[0] + " is for other names (x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs): check the host names in --kafka-brokers"
	if !kafkaconn.IsPermanent(err) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ping of a broker with another name: %v, want the permanent %q...", err, want)
	}

	// An HTTP server answers a TLS ClientHello with a plaintext 400.
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	addr := strings.TrimPrefix(web.URL, "http://")
	err = sec.Ping(ctx, []string{addr})
	want = "kafka: TLS: the broker at " + addr + " did not answer in TLS (a plaintext listener?): check --kafka-brokers and --kafka-tls"
	if !kafkaconn.IsPermanent(err) || err.Error() != want {
		t.Errorf("Ping of a plaintext port: %v, want the permanent %q", err, want)
	}
}
