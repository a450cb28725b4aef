// Package buildinfo says which build of Sluice is running: the version,
// revision and date stamped at link time (see the Makefile's build line),
// falling back on what the Go toolchain records in the binary, and exports
// them as the sluice_build_info metric so that dashboards can tell which
// build each process runs.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Stamped at build time with -ldflags "-X <package>.version=... -X
// <package>.revision=... -X <package>.date=...": `make build` and the
// Dockerfile do; a plain `go build` leaves them empty.
var (
	version  string
	revision string
	date     string
)

// Unknown is what a field reads when neither the link-time stamp nor the
// toolchain's build information has it.
const Unknown = "unknown"

// Info describes one build of the binary.
type Info struct {
	// Version is `git describe --tags --always --dirty` at build time, or
	// the module version `go install` recorded, or "dev".
	Version string `json:"version"`
	// Revision is the full commit hash, with "-dirty" when the work tree
	// had changes, or Unknown.
	Revision string `json:"revision"`
	// Date is when the binary was built (RFC 3339, UTC), or the commit's
	// time when only the toolchain's information is there, or Unknown.
	Date string `json:"date"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's build information: the link-time stamp
// where there is one, else the VCS details the Go toolchain embeds when it
// builds inside a git checkout (vcs.revision, vcs.time, vcs.modified).
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, date, bi)
}

// resolve is Get with its inputs given, for tests.
func resolve(version, revision, date string, bi *debug.BuildInfo) Info {
	info := Info{Version: version, Revision: revision, Date: date, GoVersion: runtime.Version()}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if info.Revision == "" && settings["vcs.revision"] != "" {
			info.Revision = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				info.Revision += "-dirty"
			}
		}
		if info.Date == "" {
			info.Date = settings["vcs.time"]
		}
		// `go install module@version` records the module's version; a
		// build in a checkout records "(devel)" or a pseudo-version.
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Revision == "" {
		info.Revision = Unknown
	}
	if info.Date == "" {
		info.Date = Unknown
	}
	return info
}

// NewCollector returns the sluice_build_info gauge, always 1, whose labels
// (version, revision, goversion) name the running build, in the Prometheus
// convention of *_build_info metrics: join on it to see which build a
// series came from.
func NewCollector() prometheus.Collector {
	info := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Always 1; the labels name the build of Sluice this process runs.",
		ConstLabels: prometheus.Labels{
			"version":   info.Version,
			"revision":  info.Revision,
			"goversion": info.GoVersion,
		},
	})
	g.Set(1)
	return g
}
