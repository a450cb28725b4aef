package compose

// The observability of the stack: Prometheus (prometheus.yml), its alert
// rules (alerts.yml), the "Sluice pipeline" dashboard, docs/metrics.md and
// docs/runbook.md, checked against each other, against docker-compose.yml,
// and against the metrics a running sluice binary exports (exported_test.go).

import (
	"encoding/json"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/testkit"
)

const (
	prometheusFile   = "prometheus.yml"
	alertsFile       = "alerts.yml"
	pipelineDash     = "grafana/dashboards/sluice-pipeline.json"
	dataDash         = "grafana/dashboards/sluice.json"
	promDatasource   = "grafana/provisioning/datasources/prometheus.yaml"
	metricsDoc       = "../docs/metrics.md"
	runbookDoc       = "../docs/runbook.md"
	runbookURLPrefix = "https://github.com/sluicehq/sluice/blob/main/docs/runbook.md#"
)

// ---------------------------------------------------------------------------
// The files

type promConfig struct {
	Global        map[string]string `yaml:"global"`
	RuleFiles     []string          `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names           []string `yaml:"names"`
			Type            string   `yaml:"type"`
			Port            int      `yaml:"port"`
			RefreshInterval string   `yaml:"refresh_interval"`
		} `yaml:"dns_sd_configs"`
		RelabelConfigs []struct {
			TargetLabel  string   `yaml:"target_label"`
			Replacement  string   `yaml:"replacement"`
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			Action       string   `yaml:"action"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleFile struct {
	Groups []struct {
		Name  string      `yaml:"name"`
		Rules []alertRule `yaml:"rules"`
	} `yaml:"groups"`
}

func loadYAMLFile(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	var rf ruleFile
	loadYAMLFile(t, alertsFile, &rf)
	var out []alertRule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return out
}

// dashQuery is one PromQL query of the dashboard: a panel target or a
// variable.
type dashQuery struct {
	where, expr string
}

type dashboard struct {
	UID        string                        `json:"uid"`
	Title      string                        `json:"title"`
	Panels     []dashPanel                   `json:"panels"`
	Templating struct{ List []dashVariable } `json:"templating"`
}

type dashPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource *datasourceRef           `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Datasource *datasourceRef `json:"datasource"`
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Definition string          `json:"definition"`
	AllValue   string          `json:"allValue"`
	Query      json.RawMessage `json:"query"`
}

func loadDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return d
}

// labelValuesRE matches Grafana's Prometheus variable query
// label_values(metric, label).
var labelValuesRE = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// queries returns every PromQL expression of the dashboard with Grafana's
// variables replaced by what Prometheus receives: $__rate_interval by a
// range, a multi-value variable by its "All" regex. label_values(m, l) is
// returned as m{l!=""}, which names the same metric and label.
func (d dashboard) queries(t *testing.T) []dashQuery {
	t.Helper()
	replacer := []string{"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h"}
	var out []dashQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		replacer = append(replacer, "$"+v.Name, v.AllValue, "${"+v.Name+"}", v.AllValue)
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(metric, label)", pipelineDash, v.Name, v.Definition)
			continue
		}
		out = append(out, dashQuery{"variable " + v.Name, m[1] + `{` + m[2] + `!=""}`})
	}
	r := strings.NewReplacer(replacer...)
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, dashQuery{"panel " + p.Title + " " + tg.RefID, r.Replace(tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// ---------------------------------------------------------------------------
// Static checks: no binary needed.

// TestPrometheusScrapesSluice checks that the prometheus service loads
// prometheus.yml and alerts.yml where the config says, and that every
// `sluice run` service is scraped on the port of its --http-addr (a scaled
// service through DNS discovery, so that every container is), and that
// every target names a service of the stack.
func TestPrometheusScrapesSluice(t *testing.T) {
	doc := loadCompose(t)
	svc := doc.Services["prometheus"]
	if svc == nil {
		t.Fatal("no prometheus service")
	}
	args := list(svc["command"])
	cfgPath, _ := flagValue(args, "config.file")
	mounted := map[string]string{}
	for _, m := range mounts(svc) {
		if m.typ == "bind" {
			mounted[m.target] = path.Clean(m.source)
		}
	}
	if mounted[cfgPath] != prometheusFile {
		t.Errorf("prometheus: --config.file=%s is not ./%s mounted (mounts %v)", cfgPath, prometheusFile, mounted)
	}
	var cfg promConfig
	loadYAMLFile(t, prometheusFile, &cfg)
	if len(cfg.RuleFiles) != 1 || mounted[cfg.RuleFiles[0]] != alertsFile {
		t.Errorf("%s: rule_files %v: want the mount of ./%s", prometheusFile, cfg.RuleFiles, alertsFile)
	}

	scraped := scrapedServices(t, doc, cfg)
	for _, name := range sluiceRunServices(doc) {
		_, settings := sluiceConfig(t, name, doc.Services[name])
		addr := str(settings["http-addr"])
		if v, ok := env(doc.Services[name])["SLUICE_HTTP_ADDR"]; ok {
			addr = v
		}
		_, port := splitHostPort(t, "http-addr", addr)
		if got, ok := scraped[name]; !ok {
			t.Errorf("%s: service %s (`sluice run`) is not scraped", prometheusFile, name)
		} else if got != port {
			t.Errorf("%s: service %s is scraped on port %s, but serves /metrics on %s", prometheusFile, name, got, port)
		}
	}
	// The scaled workers must be found by DNS, not a static target.
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if strings.HasPrefix(target, "sluice-worker:") {
					t.Errorf("%s: job %s scrapes sluice-worker statically: with --scale only one container would be scraped", prometheusFile, sc.JobName)
				}
			}
		}
	}

	checkPrometheusDatasource(t)
	if deps := dependsOn(doc.Services["grafana"]); deps["prometheus"] == "" {
		t.Error("grafana does not depend on prometheus")
	}
}

// scrapedServices returns the compose services prometheus.yml scrapes, with
// the port, and fails t for a target that names no service.
func scrapedServices(t *testing.T, doc composeDoc, cfg promConfig) map[string]string {
	t.Helper()
	scraped := map[string]string{} // service -> port scraped
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if jobs[sc.JobName] {
			t.Errorf("%s: job %s twice", prometheusFile, sc.JobName)
		}
		jobs[sc.JobName] = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("%s: job %s scrapes %s; Sluice serves /metrics", prometheusFile, sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("%s: job %s: target %q: %v", prometheusFile, sc.JobName, target, err)
					continue
				}
				if host == "localhost" && sc.JobName == "prometheus" {
					continue
				}
				if doc.Services[host] == nil {
					t.Errorf("%s: job %s: target %s: no service %s", prometheusFile, sc.JobName, target, host)
				}
				scraped[host] = port
			}
		}
		for _, dns := range sc.DNSSDConfigs {
			if dns.Type != "A" {
				t.Errorf("%s: job %s: dns_sd type %q: Docker's DNS answers A records for a service", prometheusFile, sc.JobName, dns.Type)
			}
			for _, name := range dns.Names {
				if doc.Services[name] == nil {
					t.Errorf("%s: job %s: dns name %s: no such service", prometheusFile, sc.JobName, name)
				}
				scraped[name] = strconv.Itoa(dns.Port)
			}
		}
	}
	return scraped
}

// checkPrometheusDatasource checks that Grafana's Prometheus data source
// points at the prometheus service.
func checkPrometheusDatasource(t *testing.T) {
	t.Helper()
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(promDatasource)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s: want one prometheus data source", promDatasource)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("%s: url %s: want http://prometheus:9090", promDatasource, ds.Datasources[0].URL)
	}
}

// TestAlertRules checks the rules' shape without the binary: each parses as
// PromQL, has a severity, a summary and a runbook link to a heading of
// docs/runbook.md, and every alert has its runbook section.
func TestAlertRules(t *testing.T) {
	rules := loadAlerts(t)
	anchors := headingAnchors(t, runbookDoc)
	p := parser.NewParser(parser.Options{})
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("%s: a rule without alert (recording rules do not belong here): %q", alertsFile, r.Expr)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("%s: alert %s twice", alertsFile, r.Alert)
		}
		seen[r.Alert] = true
		if _, err := p.ParseExpr(r.Expr); err != nil {
			t.Errorf("%s: %s: %v", alertsFile, r.Alert, err)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: %s: severity %q, want critical or warning", alertsFile, r.Alert, s)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: %s: no summary", alertsFile, r.Alert)
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURLPrefix)
		switch {
		case !ok:
			t.Errorf("%s: %s: runbook_url %q does not start with %s", alertsFile, r.Alert, r.Annotations["runbook_url"], runbookURLPrefix)
		case !anchors[anchor]:
			t.Errorf("%s: %s: runbook anchor #%s is no heading of %s", alertsFile, r.Alert, anchor, runbookDoc)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("%s: %s links to #%s, not to its own section #%s", alertsFile, r.Alert, anchor, strings.ToLower(r.Alert))
		}
	}
	// And the other way: no runbook section of an alert that is gone.
	for _, h := range headings(t, runbookDoc) {
		if strings.HasPrefix(h, "Sluice") && !strings.Contains(h, " ") && !seen[h] {
			t.Errorf("%s: section %q names no alert of %s", runbookDoc, h, alertsFile)
		}
	}
}

// TestPipelineDashboard checks the dashboard's shape without the binary:
// its uid differs from the data dashboard's, every query parses and uses the
// provisioned Prometheus data source, panel ids are unique and panels fit
// the 24-column grid, and the provider loads it.
func TestPipelineDashboard(t *testing.T) {
	d := loadDashboard(t, pipelineDash)
	if d.Title != "Sluice pipeline" {
		t.Errorf("%s: title %q", pipelineDash, d.Title)
	}
	if other := loadDashboard(t, dataDash); other.UID == d.UID {
		t.Errorf("%s and %s share uid %s: Grafana would load only one", pipelineDash, dataDash, d.UID)
	}
	var ds struct {
		Datasources []struct{ UID string } `yaml:"datasources"`
	}
	b, err := os.ReadFile(promDatasource)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) == 0 {
		t.Fatalf("%s: %v", promDatasource, err)
	}
	uid := ds.Datasources[0].UID
	ids := map[int]bool{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", pipelineDash, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
				t.Errorf("%s: panel %q: gridPos %+v outside the 24-column grid", pipelineDash, p.Title, p.GridPos)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", pipelineDash, p.Title)
			}
			for _, tg := range p.Targets {
				for _, ref := range []*datasourceRef{p.Datasource, tg.Datasource} {
					if ref == nil || ref.UID != uid || ref.Type != "prometheus" {
						t.Errorf("%s: panel %q %s: data source %+v, want the provisioned prometheus %s", pipelineDash, p.Title, tg.RefID, ref, uid)
					}
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	p := parser.NewParser(parser.Options{})
	for _, q := range d.queries(t) {
		if _, err := p.ParseExpr(q.expr); err != nil {
			t.Errorf("%s: %s: %q: %v", pipelineDash, q.where, q.expr, err)
		}
	}
	// The provider loads every file of the mounted directory.
	doc := loadCompose(t)
	found := false
	for _, m := range mounts(doc.Services["grafana"]) {
		if path.Clean(m.source) == path.Dir(pipelineDash) {
			found = true
		}
	}
	if !found {
		t.Errorf("grafana does not mount ./%s", path.Dir(pipelineDash))
	}
}

// ---------------------------------------------------------------------------
// Against the running binary.

// TestObservability runs Sluice (exported_test.go) and checks the
// dashboard's and the alerts' metrics and labels, and docs/metrics.md,
// against what it exports.
func TestObservability(t *testing.T) {
	run := runPipeline(t)
	exp := run.exp
	doc := parseMetricsDoc(t)
	targetLabels := prometheusTargetLabels(t)

	t.Run("MetricsDoc", func(t *testing.T) { checkMetricsDoc(t, exp, doc) })
	t.Run("Dashboard", func(t *testing.T) {
		d := loadDashboard(t, pipelineDash)
		for _, q := range d.queries(t) {
			checkExpr(t, pipelineDash+": "+q.where, q.expr, exp, doc, targetLabels)
		}
	})
	t.Run("Prometheus", func(t *testing.T) { checkWithPrometheus(t, run) })
	t.Run("AlertTestSeries", func(t *testing.T) { checkAlertTestSeries(t, exp, doc, targetLabels) })
	t.Run("Alerts", func(t *testing.T) {
		for _, r := range loadAlerts(t) {
			out := checkExpr(t, alertsFile+": "+r.Alert, r.Expr, exp, doc, targetLabels)
			for _, text := range r.Annotations {
				for _, m := range templateLabelRE.FindAllStringSubmatch(text, -1) {
					if out != nil && !out[m[1]] {
						t.Errorf("%s: %s: annotation uses $labels.%s, but the alert's series carry only %v", alertsFile, r.Alert, m[1], slices.Sorted(maps.Keys(out)))
					}
				}
			}
		}
	})
}

var templateLabelRE = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

// prometheusTargetLabels are the labels Prometheus adds to every scraped
// series: job, instance, and those prometheus.yml sets.
func prometheusTargetLabels(t *testing.T) map[string]bool {
	t.Helper()
	var cfg promConfig
	loadYAMLFile(t, prometheusFile, &cfg)
	out := map[string]bool{"job": true, "instance": true}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for k := range st.Labels {
				out[k] = true
			}
		}
		for _, rc := range sc.RelabelConfigs {
			if rc.TargetLabel != "" {
				out[rc.TargetLabel] = true
			}
		}
	}
	return out
}

// checkExpr parses expr and checks every metric it selects and every label
// it names against the exported families (or, for the few that appear only
// after an event the test does not cause, the documented ones). It returns
// the labels of the expression's result, nil when unknown.
func checkExpr(t *testing.T, where, expr string, exp exported, doc map[string]docMetric, target map[string]bool) map[string]bool {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return nil
	}
	c := exprChecker{t: t, where: where, exp: exp, doc: doc, target: target}
	return c.labelsOf(e)
}

type exprChecker struct {
	t      *testing.T
	where  string
	exp    exported
	doc    map[string]docMetric
	target map[string]bool
}

// seriesLabels returns the labels a selector's series carry in Prometheus.
func (c exprChecker) seriesLabels(vs *parser.VectorSelector) map[string]bool {
	name := vs.Name
	if name == "" {
		c.t.Errorf("%s: selector %s names no metric", c.where, vs)
		return nil
	}
	var labels map[string]bool
	switch {
	case name == "up":
		labels = map[string]bool{} // Prometheus's own series of each target
	default:
		if _, l := c.exp.series(name); l != nil {
			labels = copyLabels(l)
		} else if d, ok := c.doc[name]; ok && d.declaredOnly {
			labels = copyLabels(d.labels)
		} else {
			c.t.Errorf("%s: metric %s is not exported by sluice", c.where, name)
			return nil
		}
	}
	for k := range c.target {
		labels[k] = true
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != "__name__" && !labels[m.Name] {
			c.t.Errorf("%s: %s has no label %s (it has %v)", c.where, name, m.Name, slices.Sorted(maps.Keys(labels)))
		}
	}
	return labels
}

// labelsOf walks the expression and returns its result's labels.
func (c exprChecker) labelsOf(n parser.Node) map[string]bool {
	switch x := n.(type) {
	case *parser.VectorSelector:
		return c.seriesLabels(x)
	case *parser.MatrixSelector:
		return c.labelsOf(x.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labelsOf(x.Expr)
	case *parser.ParenExpr:
		return c.labelsOf(x.Expr)
	case *parser.UnaryExpr:
		return c.labelsOf(x.Expr)
	case *parser.StepInvariantExpr:
		return c.labelsOf(x.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return nil
	case *parser.Call:
		var out map[string]bool
		for _, a := range x.Args {
			if l := c.labelsOf(a); l != nil {
				out = l
			}
		}
		if x.Func.Name == "histogram_quantile" && out != nil {
			if !out["le"] {
				c.t.Errorf("%s: histogram_quantile over series without le", c.where)
			}
			out = copyLabels(out)
			delete(out, "le")
		}
		return out
	case *parser.AggregateExpr:
		return c.aggregateLabels(x)
	case *parser.BinaryExpr:
		return c.binaryLabels(x)
	default:
		c.t.Errorf("%s: cannot check %T", c.where, n)
		return nil
	}
}

// aggregateLabels checks that an aggregation's by (...) labels are on the
// series it aggregates, and returns the labels it keeps.
func (c exprChecker) aggregateLabels(x *parser.AggregateExpr) map[string]bool {
	if x.Param != nil {
		c.labelsOf(x.Param)
	}
	in := c.labelsOf(x.Expr)
	if in == nil {
		return nil
	}
	if x.Without {
		out := copyLabels(in)
		for _, g := range x.Grouping {
			delete(out, g)
		}
		return out
	}
	out := map[string]bool{}
	for _, g := range x.Grouping {
		if !in[g] {
			c.t.Errorf("%s: %s by (%s): the series aggregated have no label %s (they have %v)", c.where, x.Op, strings.Join(x.Grouping, ", "), g, slices.Sorted(maps.Keys(in)))
		}
		out[g] = true
	}
	return out
}

// binaryLabels checks the on (...) labels of a binary operation and returns
// the labels of its result.
func (c exprChecker) binaryLabels(x *parser.BinaryExpr) map[string]bool {
	lhs, rhs := c.labelsOf(x.LHS), c.labelsOf(x.RHS)
	if vm := x.VectorMatching; vm != nil && vm.On {
		for _, side := range []map[string]bool{lhs, rhs} {
			for _, l := range vm.MatchingLabels {
				if side != nil && !side[l] {
					c.t.Errorf("%s: on (%s): one side has no label %s (it has %v)", c.where, strings.Join(vm.MatchingLabels, ", "), l, slices.Sorted(maps.Keys(side)))
				}
			}
		}
	}
	if lhs == nil || rhs == nil || x.Op.IsSetOperator() {
		if lhs == nil {
			return rhs
		}
		return lhs
	}
	// Vector to vector: one-to-one matching on (...) keeps only those
	// labels; group_left keeps the left side's and group_right the
	// right side's, plus the labels they include.
	switch vm := x.VectorMatching; {
	case vm == nil:
		return lhs
	case vm.Card == parser.CardOneToOne && vm.On:
		out := map[string]bool{}
		for _, l := range vm.MatchingLabels {
			out[l] = true
		}
		return out
	case vm.Card == parser.CardManyToOne, vm.Card == parser.CardOneToMany:
		out := lhs
		if vm.Card == parser.CardOneToMany {
			out = rhs
		}
		out = copyLabels(out)
		for _, l := range vm.Include {
			out[l] = true
		}
		return out
	default:
		return lhs
	}
}

// ---------------------------------------------------------------------------
// docs/runbook.md

var headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)

func headings(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if m := headingRE.FindStringSubmatch(line); m != nil && !inFence {
			out = append(out, m[1])
		}
	}
	return out
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces as hyphens,
// repeats numbered -1, -2, ...
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, h := range headings(t, file) {
		slug := githubSlug(h)
		anchor := slug
		for i := 1; out[anchor]; i++ {
			anchor = slug + "-" + strconv.Itoa(i)
		}
		out[anchor] = true
	}
	return out
}

var slugDropRE = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)

func githubSlug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = slugDropRE.ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// ---------------------------------------------------------------------------
// docs/metrics.md

// docMetric is one row of docs/metrics.md's tables:
// | `name` | type | labels | role | meaning |
type docMetric struct {
	name, typ string
	labels    map[string]bool
	role      string
	// declaredOnly is set for the rows of the section of metrics that
	// appear only after their first event.
	declaredOnly bool
}

const declaredOnlyHeading = "Metrics that appear with their first event"

var (
	docRowRE   = regexp.MustCompile("^\\|\\s*`([a-z_:*][a-z0-9_:*]*)`\\s*\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|")
	docLabelRE = regexp.MustCompile("`([a-z_][a-z0-9_]*)`")
)

func parseMetricsDoc(t *testing.T) map[string]docMetric {
	t.Helper()
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	declaredOnly := false
	for _, line := range strings.Split(string(b), "\n") {
		if m := headingRE.FindStringSubmatch(line); m != nil {
			declaredOnly = m[1] == declaredOnlyHeading
			continue
		}
		m := docRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := docMetric{name: m[1], typ: strings.TrimSpace(m[2]), labels: map[string]bool{}, role: strings.TrimSpace(m[4]), declaredOnly: declaredOnly}
		for _, l := range docLabelRE.FindAllStringSubmatch(m[3], -1) {
			d.labels[l[1]] = true
		}
		if _, dup := out[d.name]; dup {
			t.Errorf("%s: %s listed twice", metricsDoc, d.name)
		}
		out[d.name] = d
	}
	if len(out) == 0 {
		t.Fatalf("%s: no metric rows", metricsDoc)
	}
	return out
}

// docRole is the role column for the roles a family was scraped from:
// ingest (`sluice run --role ingest`), work (`--role work`), both, or dev
// (only `sluice dev`, its embedded broker).
func docRole(roles map[string]bool) string {
	switch {
	case roles["ingest"] && roles["work"]:
		return "both"
	case roles["ingest"]:
		return "ingest"
	case roles["work"]:
		return "work"
	default:
		return "dev"
	}
}

func checkMetricsDoc(t *testing.T, exp exported, doc map[string]docMetric) {
	declared := declaredMetrics(t)
	// Every family the binary exports is documented, as it is.
	for name, f := range exp {
		d, ok := doc[name]
		if !ok {
			for pattern := range doc {
				if prefix, wild := strings.CutSuffix(pattern, "*"); wild && strings.HasPrefix(name, prefix) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s (%s, labels %v, %s) is exported but not documented", metricsDoc, name, f.typ, slices.Sorted(maps.Keys(f.labels)), docRole(f.roles))
			}
			continue
		}
		if d.declaredOnly {
			t.Errorf("%s: %s is listed among the metrics that appear with their first event, but the test scraped it: move it to its section", metricsDoc, name)
		}
		if d.typ != f.typ {
			t.Errorf("%s: %s is documented as a %s, exported as a %s", metricsDoc, name, d.typ, f.typ)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(d.labels)), slices.Sorted(maps.Keys(f.labels))) {
			t.Errorf("%s: %s: documented labels %v, exported %v", metricsDoc, name, slices.Sorted(maps.Keys(d.labels)), slices.Sorted(maps.Keys(f.labels)))
		}
		if want := docRole(f.roles); d.role != want {
			t.Errorf("%s: %s: role %q, but it is exported by %v: want %q", metricsDoc, name, d.role, slices.Sorted(maps.Keys(f.roles)), want)
		}
	}
	// Every documented metric exists: scraped, or declared in the source.
	for name, d := range doc {
		if strings.HasSuffix(name, "*") || exp[name] != nil {
			continue
		}
		if !d.declaredOnly {
			t.Errorf("%s: %s is documented but sluice did not export it", metricsDoc, name)
		} else if !declared[name] {
			t.Errorf("%s: %s is documented but declared nowhere in the source", metricsDoc, name)
		}
		if !slices.Contains([]string{"ingest", "work", "both", "dev"}, d.role) {
			t.Errorf("%s: %s: role %q, want ingest, work, both or dev", metricsDoc, name, d.role)
		}
	}
	// And every metric the source declares is documented, including those
	// the test cannot make appear.
	for name := range declared {
		if _, ok := doc[name]; !ok {
			t.Errorf("%s: %s is declared in the source but not documented", metricsDoc, name)
		}
	}
}

var mdLinkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocLinks checks the relative links of docs/runbook.md and
// docs/metrics.md: the file exists and, for #anchor, has that heading.
func TestDocLinks(t *testing.T) {
	for _, file := range []string{runbookDoc, metricsDoc} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLinkRE.FindAllStringSubmatch(string(b), -1) {
			link := m[1]
			if strings.Contains(link, "://") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			if target == "" {
				target = file
			} else {
				target = path.Join(path.Dir(file), target)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: link %s: %v", file, link, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !headingAnchors(t, target)[anchor] {
				t.Errorf("%s: link %s: no heading #%s in %s", file, link, anchor, target)
			}
		}
	}
}

const alertTestsFile = "alerts_test.yml"

// alertTests is the part of a `promtool test rules` file that the checks
// below read.
type alertTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadAlertTests(t *testing.T) alertTests {
	t.Helper()
	b, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var at alertTests
	if err := yaml.Unmarshal(b, &at); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	return at
}

// TestAlertsFire runs Prometheus's own checks on the compose stack's
// configuration: promtool check config (prometheus.yml with its rule file),
// and promtool test rules, the unit tests in alerts_test.yml that feed
// series to each alert and say when it must fire, with which labels and
// annotations, and when it must not. Every alert must have a case where it
// fires.
func TestAlertsFire(t *testing.T) {
	promtool := testkit.LookPath(t, "promtool")
	at := loadAlertTests(t)
	if !slices.Equal(at.RuleFiles, []string{alertsFile}) {
		t.Errorf("%s: rule_files %v, want [%s]", alertTestsFile, at.RuleFiles, alertsFile)
	}
	fires := map[string]bool{}
	for _, tc := range at.Tests {
		for _, r := range tc.AlertRuleTest {
			if len(r.ExpAlerts) > 0 {
				fires[r.Alertname] = true
			}
		}
	}
	for _, r := range loadAlerts(t) {
		if !fires[r.Alert] {
			t.Errorf("%s: no test where %s fires", alertTestsFile, r.Alert)
		}
	}

	// prometheus.yml names the rule file by its path in the container.
	dir := t.TempDir()
	b, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	loadYAMLFile(t, prometheusFile, &cfg)
	local := strings.ReplaceAll(string(b), cfg.RuleFiles[0], abs)
	if err := os.WriteFile(filepath.Join(dir, prometheusFile), []byte(local), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "config", filepath.Join(dir, prometheusFile)},
		{"test", "rules", alertTestsFile},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// checkAlertTestSeries checks that the series alerts_test.yml feeds the
// alerts are named and labelled as Sluice exports them, so that a rule
// proven there fires on the real metrics too.
func checkAlertTestSeries(t *testing.T, exp exported, doc map[string]docMetric, target map[string]bool) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range loadAlertTests(t).Tests {
		for _, in := range tc.InputSeries {
			e, err := p.ParseExpr(in.Series)
			if err != nil {
				t.Errorf("%s: series %s: %v", alertTestsFile, in.Series, err)
				continue
			}
			checkExpr(t, alertTestsFile+": series "+in.Series, e.String(), exp, doc, target)
		}
	}
}
