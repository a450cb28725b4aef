package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/membudget"
	"github.com/sluicehq/sluice/pipeline"
)

// TestMemoryLimitSetting checks that --memory-limit reads sizes from the
// command line, SLUICE_MEMORY_LIMIT and the config file, like every flag.
func TestMemoryLimitSetting(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     string
		file    string
		want    string
		wantErr string
	}{
		{name: "default", want: "512MiB"},
		{name: "flag", args: []string{"--memory-limit", "1GiB"}, want: "1GiB"},
		{name: "env", env: "256MiB", want: "256MiB"},
		{name: "file", file: "memory-limit: 768MiB\n", want: "768MiB"},
		{name: "file bytes", file: "memory-limit: 268435456\n", want: "256MiB"},
		{name: "bad", args: []string{"--memory-limit", "lots"}, wantErr: "memory-limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.env != "" {
				env["SLUICE_MEMORY_LIMIT"] = tt.env
			}
			cmd, err := resolveRun(t, tt.args, env, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "--role") {
				t.Fatalf("error %v, want only the --role error", err)
			}
			if got := cmd.Flags().Lookup("memory-limit").Value.String(); got != tt.want {
				t.Errorf("--memory-limit = %s, want %s", got, tt.want)
			}
		})
	}
}

// The budget reaches the pipeline and the collectors, and bounds given by
// their own flags win over it.
func TestMemoryBudgetApplied(t *testing.T) {
	build := func(args ...string) (*pipelineFlags, membudget.Budget) {
		t.Helper()
		var p pipelineFlags
		cmd := &cobra.Command{Use: "dev"}
		p.register(cmd, true)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := p.config(1, pipeline.RoleAll)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Memory == nil {
			t.Fatal("no budget in the pipeline's config")
		}
		b := *cfg.Memory
		if cfg.DedupeMaxIDs != b.DedupeMaxIDs || cfg.MaxInFlightBytes != b.AdmissionBytes || cfg.HTTPMaxParsing != b.HTTPParsing ||
			cfg.FetchMaxBytes != b.FetchMaxBytes || cfg.WorkInFlightBytes != b.LaneBytes || cfg.KafkaBatchBytes != b.ProducerBatchBytes {
			t.Errorf("config %+v does not carry budget %+v", cfg, b)
		}
		return &p, b
	}
	want, err := membudget.Plan(membudget.Shape{Limit: 256 << 20, MaxBodyBytes: 8 << 20, Streams: 2, Partitions: 8, Sinks: 2, MQTTMaxPacketBytes: 1 << 20, Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	p, b := build("--memory-limit", "256MiB")
	if b.DedupeMaxIDs != want.DedupeMaxIDs || mqttInflight(t, p) != want.MQTTInflight {
		t.Errorf("planned %d ids, %d MQTT in flight; want %d, %d", b.DedupeMaxIDs, mqttInflight(t, p), want.DedupeMaxIDs, want.MQTTInflight)
	}
	if got, want := connBounds(t, p), [5]int{want.SyslogConnections, want.RELPConnections, want.MQTTConnections, want.SyslogLongMessageBytes, want.RELPBufferBytes}; got != want {
		t.Errorf("syslog, RELP, MQTT connections, long syslog and RELP bytes: %v, want the plan's %v", got, want)
	}
	// 0 given explicitly means the plan's size too, as the help says.
	p, _ = build("--memory-limit", "256MiB", "--syslog-max-connections", "0", "--relp-max-connections", "0", "--mqtt-max-connections", "0",
		"--syslog-max-long-message-bytes", "0", "--relp-max-buffer-bytes", "0")
	if got, want := connBounds(t, p), [5]int{want.SyslogConnections, want.RELPConnections, want.MQTTConnections, want.SyslogLongMessageBytes, want.RELPBufferBytes}; got != want {
		t.Errorf("flags given as 0: %v, want the plan's %v", got, want)
	}
	p, b = build("--memory-limit", "256MiB", "--dedupe-max-ids", "5000000", "--mqtt-max-inflight", "500",
		"--syslog-max-connections", "2000", "--relp-max-connections", "50", "--mqtt-max-connections", "300",
		"--syslog-max-long-message-bytes", "3000000", "--relp-max-buffer-bytes", "4000000")
	if b.DedupeMaxIDs != 5_000_000 || mqttInflight(t, p) != 500 {
		t.Errorf("explicit flags: %d ids, %d MQTT in flight; want 5000000, 500", b.DedupeMaxIDs, mqttInflight(t, p))
	}
	if got, want := connBounds(t, p), [5]int{2000, 50, 300, 3_000_000, 4_000_000}; got != want {
		t.Errorf("explicit flags: syslog, RELP, MQTT connections, long syslog and RELP bytes: %v, want %v", got, want)
	}
	// The plan counts what the flags gave: 2,000 syslog connections alone
	// take it over its ceiling at 256MiB.
	if b.SyslogConnections != 2000 || b.Fits() == nil {
		t.Errorf("explicit flags: the plan counts %d syslog connections and fits (%v); want 2000, not fitting", b.SyslogConnections, b.Fits())
	}
}

// connBounds are the bounds the syslog, RELP and MQTT flags hold once the
// budget was applied.
func connBounds(t *testing.T, p *pipelineFlags) [5]int {
	t.Helper()
	var got [5]int
	for _, c := range p.collectors {
		switch f := c.(type) {
		case *syslogFlags:
			got[0], got[3] = f.maxConns, f.longBytes
		case *relpFlags:
			got[1], got[4] = f.maxConns, f.bufferBytes
		case *mqttFlags:
			got[2] = f.maxConns
		}
	}
	return got
}

func mqttInflight(t *testing.T, p *pipelineFlags) int {
	t.Helper()
	for _, c := range p.collectors {
		if m, ok := c.(*mqttFlags); ok {
			return m.maxInflight
		}
	}
	t.Fatal("no MQTT flags")
	return 0
}
