package kafkatopic_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/internal/tlsfiles"
	"github.com/sluicehq/sluice/kafkaconn"
	"github.com/sluicehq/sluice/kafkatopic"
)

// partitions returns the partition count of each topic the broker lists,
// asked on a transport of its own: the shared one answers from metadata
// cached for a few seconds.
func partitions(t *testing.T, sec kafkaconn.Security, brokers []string, topics ...string) map[string]int {
	t.Helper()
	tr := sec.Transport("test", 5*time.Second)
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 5 * time.Second}
	md, err := c.Metadata(context.Background(), &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, tp := range md.Topics {
		if tp.Error == nil {
			out[tp.Name] = len(tp.Partitions)
		}
	}
	return out
}

// Ensure creates what is missing with the spec's partitions and leaves
// existing topics as they are.
func TestEnsure(t *testing.T) {
	k := testkit.StartKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	existing, fresh := testkit.StreamTopic("app_logs"), "sluice.ensure_new"
	if err := kafkatopic.Ensure(ctx, kafkaconn.Security{}, k.Brokers, []string{existing, fresh}, kafkatopic.Spec{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	got := partitions(t, kafkaconn.Security{}, k.Brokers, existing, fresh)
	if got[existing] != testkit.Partitions || got[fresh] != 3 {
		t.Errorf("partitions %v, want %s: %d (as seeded), %s: 3", got, existing, testkit.Partitions, fresh)
	}
}

// A user without the right to create topics, as managed Kafka often has:
// Ensure succeeds when the topics exist, and otherwise fails at once with
// a permanent error naming the missing topics.
func TestEnsureWithoutCreateRight(t *testing.T) {
	ca := testkit.NewCA(t)
	readWrite := func(testing.TB) []kfake.Opt {
		var acls []kfake.ACL
		for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationDescribe, kmsg.ACLOperationRead, kmsg.ACLOperationWrite} {
			acls = append(acls, kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "sluice.", Pattern: kmsg.ACLResourcePatternTypePrefixed, Operation: op, Allow: true})
		}
		return []kfake.Opt{kfake.EnableACLs(), kfake.User("SCRAM-SHA-256", "app", "app-pw", acls...)}
	}
	k := testkit.StartKafka(t, testkit.KafkaSASL("SCRAM-SHA-256", "admin", "admin-pw"), testkit.KafkaTLS(ca), readWrite)
	sec, err := kafkaconn.Settings{Files: tlsfiles.Client{CA: ca.Path("ca.pem")}, Mechanism: "scram-sha-256", Username: "app", Password: "app-pw"}.Security()
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seeded := []string{testkit.StreamTopic("app_logs"), testkit.StreamTopic("iot_telemetry")}
	if err := kafkatopic.Ensure(ctx, sec, k.Brokers, seeded, kafkatopic.Spec{Partitions: 8}); err != nil {
		t.Errorf("Ensure of existing topics: %v", err)
	}
	err = kafkatopic.Ensure(ctx, sec, k.Brokers, append(seeded, "sluice.not_there"), kafkatopic.Spec{Partitions: 8})
	want := "kafka: not allowed to create topics [sluice.not_there]"
	if !kafkaconn.IsPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("Ensure of a missing topic: %v, want a permanent error containing %q", err, want)
	}
}
