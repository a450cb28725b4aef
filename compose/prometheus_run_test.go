package compose

// A real Prometheus (Debian's, the 2.x line; the stack runs 3.5) scraping
// the processes of runPipeline with the stack's prometheus.yml and
// alerts.yml, only pointed at local addresses: every dashboard query and
// alert expression must evaluate on Sluice's real series, and the alerts of
// the NATS outage that runPipeline causes must fire.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/testkit"
)

// localPrometheusConfig is prometheus.yml with its targets (compose
// service:port, and DNS discovery of a service) replaced by the addresses of
// the processes the test runs, scrapes and rule evaluation every second,
// and rules as in rulesFile.
func localPrometheusConfig(t *testing.T, addrs map[string]string, self, rulesFile string) []byte {
	t.Helper()
	var cfg map[string]any
	b, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	cfg["rule_files"] = []any{rulesFile}
	local := func(target string) string {
		host, _, _ := strings.Cut(target, ":")
		if host == "localhost" {
			return self
		}
		if a, ok := addrs[host]; ok {
			return a
		}
		t.Fatalf("%s: target %s: no local process for it", prometheusFile, target)
		return ""
	}
	scs, _ := cfg["scrape_configs"].([]any)
	for _, v := range scs {
		sc := v.(map[string]any)
		statics, _ := sc["static_configs"].([]any)
		for _, st := range statics {
			m := st.(map[string]any)
			targets, _ := m["targets"].([]any)
			for i, tg := range targets {
				targets[i] = local(str(tg))
			}
		}
		dnss, _ := sc["dns_sd_configs"].([]any)
		for _, d := range dnss {
			var targets []any
			for _, name := range mapOf(d)["names"].([]any) {
				targets = append(targets, local(str(name)))
			}
			statics = append(statics, map[string]any{"targets": targets})
		}
		delete(sc, "dns_sd_configs")
		sc["static_configs"] = statics
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rulesWithoutFor writes alerts.yml without the rules' for: durations, so
// that an alert fires as soon as its expression holds.
func rulesWithoutFor(t *testing.T) string {
	t.Helper()
	var rules map[string]any
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules["groups"].([]any) {
		for _, r := range mapOf(g)["rules"].([]any) {
			delete(mapOf(r), "for")
		}
	}
	out, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), alertsFile)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkWithPrometheus(t *testing.T, run pipelineRun) {
	addr := testkit.FreeAddr(t)
	prom := testkit.StartPrometheus(t, addr, localPrometheusConfig(t, run.addrs, addr, rulesWithoutFor(t)))
	// Both jobs up, and enough scrapes for rate() to have two samples.
	testkit.Eventually(t, 30*time.Second, "prometheus scrapes both sluice jobs", func() bool {
		up, err := prom.Query(`count_over_time(up{job=~"sluice-.*"}[1m]) >= 3 and up == 1`)
		return err == nil && len(up) == len(run.addrs)
	})

	// The NATS outage: the worker's NATS sink fails and its connection is
	// gone; nothing that means data loss fires.
	want := map[string]map[string]string{
		"SluiceSinkFailing":      {"sink": "nats"},
		"SluiceNATSDisconnected": {"job": "sluice-worker"},
	}
	var alerts []testkit.PromAlert
	testkit.Eventually(t, 30*time.Second, "the NATS outage's alerts fire", func() bool {
		var err error
		if alerts, err = prom.Alerts(); err != nil {
			t.Fatal(err)
		}
		found := 0
		for name, labels := range want {
			for _, a := range alerts {
				if a.Labels["alertname"] == name && a.State == "firing" && hasLabels(a.Labels, labels) {
					found++
					break
				}
			}
		}
		return found == len(want)
	})
	for _, a := range alerts {
		switch name := a.Labels["alertname"]; name {
		case "SluiceSinkFailing":
			if a.Labels["sink"] != "nats" {
				t.Errorf("%s fires for %v: only NATS is down", name, a.Labels)
			}
		case "SluiceDown", "SluiceWorkersAbsent", "SluiceRetentionAlarm", "SluiceBacklogAgeHigh",
			"SluiceEventsExpiredUnread", "SluicePartitionStoppedAtGap", "SluiceKafkaProduceErrors",
			"SluiceKafkaBreakerOpen", "SluiceMemoryNearLimit", "SluiceCollectorsShedding":
			t.Errorf("%s %s on a pipeline whose only fault is NATS: %v", name, a.State, a.Labels)
		}
	}

	// Every expression evaluates; one with no result must owe it to a
	// filter or to a series that does not exist yet, not to labels that
	// fail to match between its parts.
	var exprs []dashQuery
	for _, q := range loadDashboard(t, pipelineDash).queries(t) {
		exprs = append(exprs, dashQuery{pipelineDash + ": " + q.where, q.expr})
	}
	for _, r := range loadAlerts(t) {
		exprs = append(exprs, dashQuery{alertsFile + ": " + r.Alert, r.Expr})
	}
	for _, q := range exprs {
		checkEvaluates(t, prom, q)
	}
}

// checkEvaluates runs q on prom: it must not fail, and an empty result must
// be explained by a filter (a comparison, absent()) or a selector with no
// series.
func checkEvaluates(t *testing.T, prom *testkit.Prometheus, q dashQuery) {
	t.Helper()
	res, err := prom.Query(q.expr)
	if err != nil {
		t.Errorf("%s: %v", q.where, err)
		return
	}
	if len(res) > 0 {
		return
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		t.Errorf("%s: %v", q.where, err)
		return
	}
	filtered := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch x := n.(type) {
		case *parser.BinaryExpr:
			filtered = filtered || x.Op.IsComparisonOperator() && !x.ReturnBool
		case *parser.Call:
			// absent() is empty exactly when what it watches exists.
			filtered = filtered || strings.HasPrefix(x.Func.Name, "absent")
		}
		return nil
	})
	if filtered {
		return
	}
	for _, matchers := range parser.ExtractSelectors(e) {
		parts := make([]string, len(matchers))
		for i, m := range matchers {
			parts[i] = m.String()
		}
		sel := "{" + strings.Join(parts, ", ") + "}"
		if series, err := prom.Query(sel); err == nil && len(series) == 0 {
			return // the selected series do not exist (yet): nothing to compute
		}
	}
	t.Errorf("%s: %s returns nothing although every series it selects exists: do its parts' labels match?", q.where, q.expr)
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
