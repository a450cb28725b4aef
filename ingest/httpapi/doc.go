// Package httpapi is Sluice's HTTP collector, one source of the ingest gate: it receives events, validates
// them against their stream's schema, writes the valid ones to the stream's
// Kafka topic keyed by the partition key, and answers only after Kafka has
// acknowledged every one of them with acks=all.
//
// # Bodies
//
// POST /v1/streams/{stream}/events takes, with Content-Encoding gzip or none:
//
//   - with Content-Type application/x-ndjson (or application/ndjson,
//     application/jsonl): one JSON object per line. Blank lines are skipped
//     and do not count; the index of an event is its position among the
//     non-blank lines. A malformed line rejects only that line.
//   - otherwise: one JSON object, a JSON array of objects, or several
//     top-level objects one after the other. The index of an event is its
//     position in the array, or among the top-level values. An element that
//     is not an object is rejected with "not a JSON object". A syntax error
//     makes the whole body malformed: nothing in it is accepted, and the
//     answer is 400 with the error at the index of the broken value, because
//     a JSON document cannot be read reliably past a syntax error.
//
// The body limit applies to the body as sent and again after decompression.
//
// # Answers
//
// 202 and 400 carry {"accepted":N,"rejected":M,"errors":[{"index":i,"error":"field: problem"}]},
// one error per problem field, capped with "errors_omitted" counting the
// rest. 202 means at least one event was accepted and acknowledged by Kafka;
// 400 means none was valid. Other failures carry {"error":"..."}: 401, 404
// (with "streams"), 405, 408 (a body that arrived below the minimum rate,
// or not at all, after its grace; the connection is closed), 413 (body,
// events per request, or more events than the admission capacity), 415
// (Content-Encoding), and 429 or 503 with Retry-After, after which nothing
// of the request counts as acknowledged.
//
// A request that fails after reaching Kafka may still have been partly
// written. Retrying it with the same event_ids is safe because the workers
// deduplicate by event_id; events posted without one get a new UUIDv7 on
// every attempt, so only producers that set event_id get that guarantee.
package httpapi
