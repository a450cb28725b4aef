// Package syslog is Sluice's syslog collector: RFC 5424 and RFC 3164
// messages over TCP (octet-counted or newline-delimited frames, told apart
// per frame, RFC 6587) and UDP (one datagram, one message), mapped onto the
// app_logs stream by ToEvent and handed to the ingest gate.
//
// AddLine (with ToEvent and EventID behind it) is exported for the RELP
// collector, which receives the same messages over another transport.
//
// Choices, where the SPEC leaves them open:
//
//   - facility goes into attrs as its keyword (kern, user, daemon, ...,
//     local7), as `logger -p` and syslog.conf spell it.
//   - A message that does not start with a PRI, or whose RFC 5424 header or
//     structured data is broken, is dead-lettered with the reason. An RFC
//     3164 message is parsed in best effort: without a header the parser
//     knows, its whole text after the PRI is the message.
//   - A newline-delimited line over the maximum size is cut to it and
//     dead-lettered (with its full size in the reason), and the rest of the
//     line is skipped, so the connection goes on. An octet count over the
//     maximum closes the connection: what follows cannot be trusted to be a
//     frame boundary.
//   - TCP connections: beyond MaxConnections a connection is accepted and
//     closed at once; one that stops in the middle of a frame for
//     ReadTimeout is closed, and one idle between frames for IdleTimeout
//     too, so that idle connections do not hold every slot.
//   - Backpressure: each connection reads into one batch while its previous
//     batch commits, and stops reading while both are busy, so a sender
//     faster than Kafka blocks in TCP. Batches held at once across all
//     connections are bounded by MaxBufferBytes. Plain TCP has no
//     acknowledgement: lines read but not yet committed when the process
//     dies are lost (RELP is the reliable transport). On a graceful stop,
//     lines already read get ShutdownGrace to reach Kafka.
//   - UDP: a bounded queue (lines and bytes) between the socket and the
//     committer; what does not fit is dropped and counted in
//     sluice_syslog_dropped_total{transport="udp",reason="queue_full"}.
//     Datagrams the kernel drops when its receive buffer is full are not
//     seen, hence not counted.
package syslog
