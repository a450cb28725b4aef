package nats

import "testing"

func TestSubject(t *testing.T) {
	tests := []struct{ key, want string }{
		{"sensor-0042", "sluice.iot_telemetry.sensor-0042"},
		{"a.b", "sluice.iot_telemetry.a_b"},
		{"a*b>c", "sluice.iot_telemetry.a_b_c"},
		{"two words\tand\ttabs", "sluice.iot_telemetry.two_words_and_tabs"},
		{"", "sluice.iot_telemetry._"},
		{"ünïcode", "sluice.iot_telemetry.ünïcode"},
	}
	for _, tt := range tests {
		if got := Subject("sluice.", "iot_telemetry", tt.key); got != tt.want {
			t.Errorf("Subject(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}
