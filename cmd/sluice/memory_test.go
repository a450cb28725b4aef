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
	p, b = build("--memory-limit", "256MiB", "--dedupe-max-ids", "5000000", "--mqtt-max-inflight", "500")
	if b.DedupeMaxIDs != 5_000_000 || mqttInflight(t, p) != 500 {
		t.Errorf("explicit flags: %d ids, %d MQTT in flight; want 5000000, 500", b.DedupeMaxIDs, mqttInflight(t, p))
	}
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
