package testkit

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sluicehq/sluice/internal/promscrape"
)

// HTTPGatherer gathers the metric families a process serves at url (its
// /metrics, in the Prometheus text format), so that Metric and the other
// helpers taking a Gatherer read a process the test started as they read an
// in-process registry.
func HTTPGatherer(url string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		byName, err := promscrape.Get(ctx, http.DefaultClient, url)
		if err != nil {
			return nil, err
		}
		out := make([]*dto.MetricFamily, 0, len(byName))
		for _, mf := range byName {
			out = append(out, mf)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, nil
	})
}
