// Package ingest is the one gate between Sluice's collectors and Kafka.
//
// A collector (a source: HTTP in ingest/httpapi, MQTT in ingest/mqtt,
// syslog in ingest/syslog, RELP in ingest/relp) receives input in its own
// protocol and hands it to the Gate in batches:
//
//	b, err := gate.Begin("iot_telemetry", ingest.Origin{Source: "mqtt", Detail: topic, DeadLetter: true})
//	err = b.ReadJSON(payload)      // or b.Add(v), b.AddWithID(v, id), b.Reject(raw, why)
//	err = b.Commit(ctx)            // HTTP: refuse with 429/503 on error
//	err = b.CommitWait(ctx)        // MQTT, syslog, RELP: hold the ack and wait
//
// The gate validates each event against its stream's schema, stamps
// event_id (the producer's, a derived one, or a random UUIDv7) and
// received_at, encodes it, admits the batch against the in-flight bound, and
// produces it with acks=all, dead letters included. Commit returns nil only
// when Kafka holds every message of the batch: that is when a source may
// acknowledge its producer. A source knows nothing of Kafka, and the gate
// knows nothing of protocols.
package ingest
