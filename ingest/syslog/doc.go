// Package syslog is Sluice's syslog collector: RFC 5424 and RFC 3164
// messages over TCP (octet-counted or newline-delimited frames, told apart
// per frame, RFC 6587) and UDP (one datagram, one message), mapped onto the
// app_logs stream by ToEvent and handed to the ingest gate.
//
// ToEvent and AddLine are exported for the RELP collector, which receives
// the same messages over another transport.
package syslog
