package membudget

import (
	"fmt"
	"runtime/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Register exports the ceiling, Go's share of it and the memory Go's limit
// counts now, so that a dashboard shows how near the process runs to it.
// The resident set itself is process_resident_memory_bytes.
func (b Budget) Register(reg prometheus.Registerer) error {
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_memory_limit_bytes",
			Help: "The process's memory ceiling (--memory-limit) that its queues and buffers are sized from.",
		}, func() float64 { return float64(b.Limit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_memory_go_limit_bytes",
			Help: "The Go runtime's soft memory limit (debug.SetMemoryLimit): the ceiling less headroom for memory Go does not count.",
		}, func() float64 { return float64(b.GoLimit) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_memory_used_bytes",
			Help: "Memory the Go runtime holds and its limit counts (mapped, less what is returned to the OS); compare with sluice_memory_go_limit_bytes.",
		}, GoUsed),
	}
	for _, g := range gauges {
		if err := reg.Register(g); err != nil {
			return fmt.Errorf("membudget: register metrics: %w", err)
		}
	}
	return nil
}

// GoUsed is the memory Go's memory limit compares against: all memory the
// runtime has mapped less the heap it has released to the OS.
func GoUsed() float64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64() - s[1].Value.Uint64())
}
