package main

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzConfigFile feeds any bytes to `sluice run --config` and checks that
// the file is either applied (run then fails only at the deliberately bad
// --role given on the command line, before it connects to anything) or
// refused with an error that names the setting at fault. A file that is
// not a YAML mapping (or with a key twice) may be refused as a whole,
// naming the file. Panics are what the fuzzer looks for first.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{
		"", "http-addr: 0.0.0.0:1\n", "kafka-brokers: [a:1, b:2]\n", "kafka-brokers: []\n", "partitions: many\n",
		"memory-limit: 256MiB\n", "memory-limit: 99999999999999999999GiB\n", "memory-limit: -1\n", "memory-limit: 1e300\n",
		"token: [a, b]\n", "token: ''\n", "token-file: /nonexistent\n", "config: x\n", "htp-addr: x\n", "~: 1\n",
		"1: 2\n", "[1, 2]\n", "a\n", "http-addr: {a: 1}\n", "pprof: yes\n", "max-body-bytes: -5\n", "batch-linger: -1s\n",
		"http-max-connections: 0\n", "partitions: 0\n", "mqtt-max-packet-bytes: 0\n", "dedupe-max-ids: 1e9\n", "mqtt-route: [\"a=b\", \"c\"]\n", "http-addr: null\n",
		"role: work\n", "log-level: nonsense\n", "log-format: xml\n", "log-level: debug\n", "clickhouse-ttl: 90x\n", "partitions: 0x10\n", "workers: -1\n",
		"&a x: *a\n", "a: &a [*a]\n", "http-addr: !!binary aGk=\n", "\xff: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "sluice.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		// The bad role stops run right after its settings are resolved.
		root.SetArgs([]string{"run", "--role", "nonsense", "--log-level", "error", "--config", path})
		err := root.Execute()
		if err == nil {
			t.Fatalf("run with --role nonsense succeeded on config %q", data)
		}
		msg := err.Error()
		if strings.HasPrefix(msg, "--role: ") {
			return // applied
		}
		settings, err := readSettings(path)
		if err != nil {
			if !strings.HasPrefix(msg, "config "+path) {
				t.Fatalf("config %q refused with %q, which does not say it is the file", data, msg)
			}
			return
		}
		for _, s := range settings {
			if strings.Contains(msg, s.key) || strings.Contains(msg, strconv.Quote(s.key)) {
				return
			}
		}
		t.Fatalf("config %q refused with %q, which names none of its keys", data, msg)
	})
}
