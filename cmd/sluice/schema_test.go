package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSchemaDDL checks that `sluice schema ddl` prints the statements of the
// server version asked for, and refuses bad options by name.
func TestSchemaDDL(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
		wantErr string
	}{
		{name: "18.16 types", args: []string{"iot_telemetry", "--server-version", "18.16"},
			want:    []string{"CREATE TABLE IF NOT EXISTS `sluice`.`iot_telemetry`", "`ts_ms` UInt16", "Nested(", "PARTITION BY toYYYYMM(`stored_at`)"},
			notWant: []string{"DateTime64", "app_logs"}},
		{name: "LTS types, day partitions and TTL", args: []string{"app_logs", "--server-version", "25.3", "--clickhouse-partition", "day", "--clickhouse-ttl", "30d"},
			want: []string{"DateTime64(3)", "Map(String, String)", "toYYYYMMDD(`stored_at`)", "INTERVAL 30 DAY", "bloom_filter"}},
		{name: "every stream by default", args: []string{"--server-version", "18.16"},
			want: []string{"`iot_telemetry`", "`app_logs`"}},
		{name: "unknown stream", args: []string{"nope"}, wantErr: "nope"},
		{name: "bad version", args: []string{"--server-version", "new"}, wantErr: "--server-version"},
		{name: "bad partition", args: []string{"--clickhouse-partition", "week"}, wantErr: "--clickhouse-partition"},
		{name: "bad ttl", args: []string{"--clickhouse-ttl", "soon"}, wantErr: "--clickhouse-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs(append([]string{"schema", "ddl"}, tt.args...))
			err := root.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
