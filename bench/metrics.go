package bench

import (
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// matches reports whether m has every label in want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// counterSum sums a counter's series that have the labels in want.
func counterSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		if matches(m, want) {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// histogram is a cumulative histogram: counts of observations at or below
// each upper bound, the last bound +Inf.
type histogram struct {
	bounds []float64
	counts []float64
}

// histogramSum merges a histogram's series that have the labels in want.
func histogramSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) histogram {
	byBound := map[float64]float64{}
	var total float64
	for _, m := range fams[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		total += float64(h.GetSampleCount())
	}
	byBound[math.Inf(1)] = total
	var h histogram
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	return h
}

// minus returns the observations of h not in before (the same buckets).
func (h histogram) minus(before histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(before.counts) && before.bounds[i] == h.bounds[i] {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear interpolation within the bucket that holds it. It returns
// NaN without observations, and the highest finite bound when the
// quantile lies beyond it.
func (h histogram) quantile(q float64) float64 {
	n := len(h.counts)
	if n == 0 || h.counts[n-1] == 0 {
		return math.NaN()
	}
	rank := q * h.counts[n-1]
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		if math.IsInf(h.bounds[i], 1) {
			if i == 0 {
				return math.NaN()
			}
			return h.bounds[i-1]
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = h.bounds[i-1], h.counts[i-1]
		}
		if c == below {
			return h.bounds[i]
		}
		return lo + (h.bounds[i]-lo)*(rank-below)/(c-below)
	}
	return h.bounds[n-1]
}
