package mqtt

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		spec         string
		filter       string
		stream       string
		subscription string
		fields       []string
		err          string // a substring of the error; empty: no error
	}{
		{spec: "devices/{device_id}/telemetry=iot_telemetry", filter: "devices/{device_id}/telemetry", stream: "iot_telemetry",
			subscription: "devices/+/telemetry", fields: []string{"device_id"}},
		{spec: " services/{service}/logs = app_logs ", filter: "services/{service}/logs", stream: "app_logs",
			subscription: "services/+/logs", fields: []string{"service"}},
		{spec: "site/{site}/{device_id}/#=iot_telemetry", filter: "site/{site}/{device_id}/#", stream: "iot_telemetry",
			subscription: "site/+/+/#", fields: []string{"site", "device_id"}},
		{spec: "+/x=s", filter: "+/x", stream: "s", subscription: "+/x"},
		{spec: "#=s", filter: "#", stream: "s", subscription: "#"},
		{spec: "a=b=c", filter: "a", stream: "b=c", subscription: "a"},
		{spec: "devices/+/telemetry", err: "want FILTER=STREAM"},
		{spec: "=iot_telemetry", err: "want FILTER=STREAM"},
		{spec: "devices/x=", err: "want FILTER=STREAM"},
		{spec: "a/#/b=s", err: "# must be the last level"},
		{spec: "a/{}/b=s", err: "placeholder is a whole level"},
		{spec: "a/{x/b=s", err: "placeholder is a whole level"},
		{spec: "a/x}/b=s", err: "placeholder is a whole level"},
		{spec: "a/{x+}/b=s", err: "placeholder is a whole level"},
		{spec: "a/pre{x}/b=s", err: "placeholder is a whole level"},
		{spec: "a/b+/c=s", err: "+ and # must be a whole level"},
		{spec: "a/b#=s", err: "+ and # must be a whole level"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			r, err := ParseRoute(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Filter != tt.filter || r.Stream != tt.stream {
				t.Errorf("got %q=%q, want %q=%q", r.Filter, r.Stream, tt.filter, tt.stream)
			}
			if got := r.Subscription(); got != tt.subscription {
				t.Errorf("Subscription() = %q, want %q", got, tt.subscription)
			}
			if got := r.Fields(); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("Fields() = %v, want %v", got, tt.fields)
			}
		})
	}
}

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		filter string
		topic  string
		match  bool
		fields map[string]string
	}{
		{"devices/{device_id}/telemetry", "devices/sensor-1/telemetry", true, map[string]string{"device_id": "sensor-1"}},
		{"devices/{device_id}/telemetry", "devices//telemetry", true, map[string]string{"device_id": ""}},
		{"devices/{device_id}/telemetry", "devices/sensor-1/status", false, nil},
		{"devices/{device_id}/telemetry", "devices/sensor-1/telemetry/x", false, nil},
		{"devices/{device_id}/telemetry", "devices/sensor-1", false, nil},
		{"devices/{device_id}/telemetry", "Devices/sensor-1/telemetry", false, nil},
		{"site/{site}/{device_id}/#", "site/a/d1/x/y", true, map[string]string{"site": "a", "device_id": "d1"}},
		{"site/{site}/{device_id}/#", "site/a/d1", true, map[string]string{"site": "a", "device_id": "d1"}},
		{"site/{site}/{device_id}/#", "site/a", false, nil},
		{"a/+/c", "a/b/c", true, nil},
		{"a/+/c", "a/b/d", false, nil},
		{"a/#", "a", true, nil},
		{"a/#", "a/b/c", true, nil},
		{"a/#", "b", false, nil},
		{"#", "anything/at/all", true, nil},
		{"#", "$SYS/broker/uptime", false, nil},
		{"+/broker/uptime", "$SYS/broker/uptime", false, nil},
		{"{x}/broker/uptime", "$SYS/broker/uptime", false, nil},
		{"$SYS/#", "$SYS/broker/uptime", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter+" "+tt.topic, func(t *testing.T) {
			r, err := ParseRoute(tt.filter + "=s")
			if err != nil {
				t.Fatal(err)
			}
			fields, ok := r.Match(tt.topic)
			if ok != tt.match {
				t.Fatalf("Match(%q) = %v, want %v", tt.topic, ok, tt.match)
			}
			if ok && !reflect.DeepEqual(fields, tt.fields) {
				t.Errorf("fields = %v, want %v", fields, tt.fields)
			}
		})
	}
}

func TestRouterFirstMatchWins(t *testing.T) {
	rs, err := ParseRoutes([]string{"devices/special/telemetry=app_logs", "devices/{device_id}/telemetry=iot_telemetry"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		topic, stream string
		fields        map[string]string
		ok            bool
	}{
		{"devices/special/telemetry", "app_logs", nil, true},
		{"devices/d7/telemetry", "iot_telemetry", map[string]string{"device_id": "d7"}, true},
		{"services/x/logs", "", nil, false},
	}
	for _, tt := range tests {
		stream, fields, ok := rs.Route(tt.topic)
		if stream != tt.stream || ok != tt.ok || !reflect.DeepEqual(fields, tt.fields) {
			t.Errorf("Route(%q) = %q %v %v, want %q %v %v", tt.topic, stream, fields, ok, tt.stream, tt.fields, tt.ok)
		}
	}
}

func TestParseRoutesDefaults(t *testing.T) {
	rs, err := ParseRoutes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var subs []string
	for _, r := range rs {
		subs = append(subs, r.Stream+" "+r.Subscription())
	}
	want := []string{"iot_telemetry devices/+/telemetry", "app_logs services/+/logs"}
	if !reflect.DeepEqual(subs, want) {
		t.Errorf("default routes = %v, want %v", subs, want)
	}
	if _, err := ParseRoutes([]string{"ok/{x}=s", "bad"}); err == nil {
		t.Error("ParseRoutes accepted a malformed route after a good one")
	}
}
