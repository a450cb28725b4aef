package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-30T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	tests := []struct {
		name           string
		ver, rev, date string
		bi             *debug.BuildInfo
		want           Info
	}{
		{name: "stamped wins", ver: "v1.2.0", rev: "deadbeef", date: "2026-12-01T00:00:00Z", bi: vcs,
			want: Info{Version: "v1.2.0", Revision: "deadbeef", Date: "2026-12-01T00:00:00Z", GoVersion: "go1.99"}},
		{name: "vcs fallback", bi: vcs,
			want: Info{Version: "dev", Revision: "abc123-dirty", Date: "2026-11-30T10:00:00Z", GoVersion: "go1.99"}},
		{name: "go install", bi: &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.3.0"}},
			want: Info{Version: "v1.3.0", Revision: Unknown, Date: Unknown, GoVersion: "go1.99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve(tt.ver, tt.rev, tt.date, tt.bi); got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector())
	info := Get()
	want := `# HELP sluice_build_info Always 1; the labels name the build of Sluice this process runs.
# TYPE sluice_build_info gauge
sluice_build_info{goversion="` + info.GoVersion + `",revision="` + info.Revision + `",version="` + info.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sluice_build_info"); err != nil {
		t.Error(err)
	}
}
