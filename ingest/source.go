package ingest

import "context"

// Source is a collector: it receives events from producers in its own
// protocol (HTTP, MQTT, syslog, RELP) and hands them to a Gate, and it
// acknowledges its producers only once the gate's Commit returned nil.
type Source interface {
	// Name names the source in logs, such as "mqtt" or "syslog-tcp".
	Name() string
	// Run receives until ctx ends, then stops taking new input, finishes
	// or abandons (unacknowledged) what is in flight, and returns. An
	// error returned before ctx ends stops the process.
	Run(ctx context.Context) error
}
