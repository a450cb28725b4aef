package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Partitions added to a stream's topic while the pipeline runs are read
// too: the workers' group rebalances onto them, so that events the
// producer now sends there land in ClickHouse instead of waiting for an
// unrelated rebalance.
func TestAddedPartitionsAreConsumed(t *testing.T) {
	db := newTestDB(t)
	s := startStack(t, db, nil)
	post := func(prefix string, n int) {
		for i := range n {
			device := fmt.Sprintf("dev-%s-%d", prefix, i)
			if code, body := postEvents(t, s.HTTPURL, "iot_telemetry", telemetry(device, prefix+"-"+device)); code != http.StatusAccepted {
				t.Fatalf("post: %d %v", code, body)
			}
		}
	}
	post("before", 40)
	db.waitRows(t, map[string]uint64{"iot_telemetry": 40}, 60*time.Second)

	client := &kafka.Client{Addr: kafka.TCP(s.KafkaAddr)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: "sluice.iot_telemetry", Count: 8}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for topic, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create partitions of %s: %v", topic, err)
		}
	}
	// The producer sees the new partitions on its next metadata refresh
	// (5 s); 80 devices then hash onto all eight.
	time.Sleep(6 * time.Second)
	post("after", 80)
	db.waitRows(t, map[string]uint64{"iot_telemetry": 120}, 60*time.Second)

	// The query gets its own deadline: ctx, started before the sleep and
	// the wait for rows, may already have run out.
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	var onNew uint64
	q := fmt.Sprintf("SELECT count() FROM %s.iot_telemetry WHERE kafka_partition >= 4", db.Name)
	if err := db.conn.QueryRow(qctx, q).Scan(&onNew); err != nil {
		t.Fatal(err)
	}
	if onNew == 0 {
		t.Error("no row came from the added partitions: the producer never wrote there, so the test proves nothing")
	}
}
