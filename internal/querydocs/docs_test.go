package querydocs

import (
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/sluicehq/sluice/sinks/clickhouse"
	"go.yaml.in/yaml/v3"
)

// The files these tests check, relative to this package.
const (
	docFile           = "../../docs/queries.md"
	composeDir        = "../../compose"
	composeFile       = composeDir + "/docker-compose.yml"
	sluiceConfigFile  = composeDir + "/sluice.yaml"
	dashboardFile     = composeDir + "/grafana/dashboards/sluice.json"
	datasourceFile    = composeDir + "/grafana/provisioning/datasources/clickhouse.yaml"
	dashboardProvFile = composeDir + "/grafana/provisioning/dashboards/sluice.yaml"
	goldenFile        = "testdata/lts.golden"

	pluginID = "grafana-clickhouse-datasource"
)

var update = flag.Bool("update", false, "rewrite testdata/lts.golden from docs/queries.md")

// docQueryNames are the queries docs/queries.md must have, in both forms:
// the questions analysts ask first, the lists the dashboard's drop-downs
// show, and the rollup queries of the dashboard's long-range panels. The
// dashboard must show every one of them. The document must also have the
// rollupQueryNames (rollup_test.go), which need not be on the dashboard.
var docQueryNames = []string{
	"latest_value_per_device",
	"metric_per_minute",
	"silent_devices",
	"error_rate_per_service",
	"slowest_traces",
	"trace_log_lines",
	"device_ids",
	"metric_names",
	"rollup_metric_per_hour",
	"rollup_error_rate_per_service",
}

func loadDocQueries(t testing.TB) []Query {
	t.Helper()
	b, err := os.ReadFile(docFile)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := ParseMarkdown(b)
	if err != nil {
		t.Fatalf("%s: %v", docFile, err)
	}
	return qs
}

func loadDashboard(t testing.TB) *Dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDashboard(b)
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func loadYAML(t testing.TB, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// layoutRules are the columns and functions of one layout that a query for
// the other cannot use: what a form copied from the wrong layout shows.
var layoutRules = map[Server][]*regexp.Regexp{
	// Not in an LTS form: the 18.16 layout's columns.
	ServerLTS: {
		regexp.MustCompile(`\b(ts|received_at)_ms\b`),
		regexp.MustCompile(`\b(metrics|tags|attrs)\.(name|value)\b`),
	},
	// Not in an 18.16 form: what 18.16 does not have.
	Server1816: {
		regexp.MustCompile(`\bmap(Keys|Values|Contains|Filter|Apply)\s*\(`),
		regexp.MustCompile(`\b(metrics|tags|attrs)\s*\[`),
		regexp.MustCompile(`\b(DateTime64|LowCardinality|Map)\s*\(`),
		regexp.MustCompile(`\bnow64\b|\w+64(Milli|Micro|Nano)\b`),
	},
}

// TestDocQueries checks docs/queries.md on its own: every query in both
// forms, each form free of the other layout's columns and functions.
func TestDocQueries(t *testing.T) {
	qs := loadDocQueries(t)
	has := map[string]map[Server]bool{}
	for _, q := range qs {
		if has[q.Name] == nil {
			has[q.Name] = map[Server]bool{}
		}
		for _, s := range []Server{Server1816, ServerLTS} {
			if !q.For(s) {
				continue
			}
			has[q.Name][s] = true
			text := stripQuoted(q.SQL)
			for _, re := range layoutRules[s] {
				if m := re.FindString(text); m != "" {
					t.Errorf("%s:%d: query %s for %s uses %q, which belongs to the other layout", docFile, q.Line, q.Name, s, m)
				}
			}
		}
	}
	for name, forms := range has {
		for _, s := range []Server{Server1816, ServerLTS} {
			if !forms[s] {
				t.Errorf("%s: query %s has no form for %s (server: %s, or server: any when the text is the same)", docFile, name, s, s)
			}
		}
	}
	required := slices.Concat(docQueryNames, rollupQueryNames)
	slices.Sort(required)
	for _, name := range slices.Compact(required) {
		if has[name] == nil {
			t.Errorf("%s: query %s is missing", docFile, name)
		}
	}
}

// tableDDL is what Sluice creates for the built-in streams on a server of
// the layout's kind (18.16, or the current LTS), in database db: the tables
// the queries are tested on are the ones Sluice makes.
func tableDDL(t testing.TB, db string, layout Server) []string {
	t.Helper()
	v := clickhouse.Version{Major: 18, Minor: 16}
	if layout == ServerLTS {
		v = clickhouse.Version{Major: 25, Minor: 3}
	}
	var out []string
	for _, name := range []string{"iot_telemetry", "app_logs"} {
		out = append(out, clickhouse.DDL(db, testkit.Stream(t, name), v, clickhouse.TableOptions{})...)
	}
	return out
}

const goldenHeader = `-- The current LTS forms of the queries in docs/queries.md, and the LTS
-- tables they were written for. No LTS server runs in the tests here, so
-- these are pinned: a diff in this file is a change to what analysts and the
-- Grafana dashboard run on the LTS. Check it on a real one (the compose
-- stack: SLUICE_CLICKHOUSE_ADDR=127.0.0.1:19000 go test ./internal/querydocs/
-- runs the LTS forms too), then rewrite this file with
-- go test ./internal/querydocs/ -update

`

func ltsGolden(t testing.TB, qs []Query) string {
	var b strings.Builder
	b.WriteString(goldenHeader)
	for _, ddl := range tableDDL(t, "sluice", ServerLTS) {
		b.WriteString(ddl + ";\n\n")
	}
	for _, q := range qs {
		if q.For(ServerLTS) {
			fmt.Fprintf(&b, "-- query: %s\n%s;\n\n", q.Name, q.SQL)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// TestLTSGolden pins the LTS forms, which cannot run here.
func TestLTSGolden(t *testing.T) {
	got := ltsGolden(t, loadDocQueries(t))
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (go test ./internal/querydocs/ -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the LTS queries of %s or the LTS tables differ from %s:\n%s\n"+
			"If the change is meant, check it on an LTS server and run go test ./internal/querydocs/ -update.",
			docFile, goldenFile, firstDiff(string(want), got))
	}
}

// firstDiff shows the first line where two texts differ.
func firstDiff(want, got string) string {
	n, wl, gl := testkit.FirstDiff(want, got)
	if n == 0 {
		return "(no line differs)"
	}
	return fmt.Sprintf("line %d:\n  pinned: %q\n  now:    %q", n, wl, gl)
}

// grafanaSetup is what the compose stack's Grafana is given.
type grafanaSetup struct {
	pluginVersion string
	datasource    DatasourceRef
}

// TestGrafanaProvisioning checks the grafana service of the compose stack
// against its provisioning files: the plugin installed is the one the data
// source and the dashboard name, at one version; the data source reaches
// the ClickHouse service and the database Sluice writes; the provisioned
// dashboard is the file these tests check.
func TestGrafanaProvisioning(t *testing.T) { grafana(t) }

func grafana(t *testing.T) grafanaSetup {
	t.Helper()
	compose := loadYAML(t, composeFile)
	services, _ := compose["services"].(map[string]any)
	svc, _ := services["grafana"].(map[string]any)
	if svc == nil {
		t.Fatalf("%s: no grafana service", composeFile)
	}
	if img, _ := svc["image"].(string); !strings.HasPrefix(img, "grafana/grafana:") {
		t.Errorf("grafana: image %q, want grafana/grafana:<version>", img)
	}
	env, ok := svc["environment"].(map[string]any)
	if !ok {
		t.Fatalf("grafana: environment is not a mapping")
	}
	var setup grafanaSetup
	for _, p := range strings.Split(fmt.Sprint(env["GF_PLUGINS_PREINSTALL_SYNC"]), ",") {
		id, v, _ := strings.Cut(strings.TrimSpace(p), "@")
		if id == pluginID {
			setup.pluginVersion = v
		}
	}
	if setup.pluginVersion == "" {
		t.Fatalf("grafana: GF_PLUGINS_PREINSTALL_SYNC does not install %s@<version>", pluginID)
	}
	if PluginMajor(setup.pluginVersion) < 4 {
		t.Errorf("grafana: %s %s: the dashboard is written for version 4 or later", pluginID, setup.pluginVersion)
	}

	// Bind mounts: container path -> host path (relative to compose/).
	mounts := map[string]string{}
	vols, _ := svc["volumes"].([]any)
	for _, v := range vols {
		parts := strings.Split(fmt.Sprint(v), ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			mounts[parts[1]] = filepath.Join(composeDir, parts[0])
		}
	}
	hostPath := func(container string) string {
		for target, src := range mounts {
			if container == target {
				return src
			}
			if rest, ok := strings.CutPrefix(container, target+"/"); ok {
				return filepath.Join(src, rest)
			}
		}
		return ""
	}
	for _, want := range []struct{ container, file string }{
		{"/etc/grafana/provisioning/datasources", datasourceFile},
		{"/etc/grafana/provisioning/dashboards", dashboardProvFile},
	} {
		if src := hostPath(path.Join(want.container, filepath.Base(want.file))); filepath.Clean(src) != filepath.Clean(want.file) {
			t.Errorf("grafana: %s is not mounted at %s", want.file, want.container)
		}
	}

	// The data source.
	ds := loadYAML(t, datasourceFile)
	list, _ := ds["datasources"].([]any)
	var chDS map[string]any
	for _, e := range list {
		if m, _ := e.(map[string]any); m != nil && m["type"] == pluginID {
			if chDS != nil {
				t.Errorf("%s: more than one %s data source", datasourceFile, pluginID)
			}
			chDS = m
		}
	}
	if chDS == nil {
		t.Fatalf("%s: no %s data source", datasourceFile, pluginID)
	}
	setup.datasource = DatasourceRef{Type: pluginID, UID: fmt.Sprint(chDS["uid"])}
	if chDS["uid"] == nil {
		t.Errorf("%s: the data source has no uid for the dashboard to refer to", datasourceFile)
	}
	jd, _ := chDS["jsonData"].(map[string]any)
	host, port := fmt.Sprint(jd["host"]), fmt.Sprint(jd["port"])
	if target, _ := services[host].(map[string]any); target == nil || !strings.Contains(fmt.Sprint(target["image"]), "clickhouse") {
		t.Errorf("%s: host %q is not the ClickHouse service", datasourceFile, host)
	}
	sluice := loadYAML(t, sluiceConfigFile)
	if want := fmt.Sprint(sluice["clickhouse-addr"]); host+":"+port != want || jd["protocol"] != "native" {
		t.Errorf("%s: %s:%s over %v; the workers write to %s over the native protocol", datasourceFile, host, port, jd["protocol"], want)
	}
	if db, want := fmt.Sprint(jd["defaultDatabase"]), fmt.Sprint(sluice["clickhouse-database"]); db != want {
		t.Errorf("%s: defaultDatabase %q, but the workers write to database %q (the queries name no database)", datasourceFile, db, want)
	}
	if v := fmt.Sprint(jd["version"]); v != setup.pluginVersion {
		t.Errorf("%s: jsonData.version %q, but the plugin installed is %s", datasourceFile, v, setup.pluginVersion)
	}

	// The dashboard provider loads the directory holding the dashboard.
	prov := loadYAML(t, dashboardProvFile)
	providers, _ := prov["providers"].([]any)
	found := false
	for _, p := range providers {
		m, _ := p.(map[string]any)
		opts, _ := m["options"].(map[string]any)
		dir := hostPath(fmt.Sprint(opts["path"]))
		if dir != "" && filepath.Clean(filepath.Join(dir, filepath.Base(dashboardFile))) == filepath.Clean(dashboardFile) {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: no provider loads the directory mounted from %s", dashboardProvFile, filepath.Dir(dashboardFile))
	}
	if home := fmt.Sprint(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]); home != "<nil>" && filepath.Clean(hostPath(home)) != filepath.Clean(dashboardFile) {
		t.Errorf("grafana: home dashboard %s is not %s", home, dashboardFile)
	}
	return setup
}

// TestDashboardRunsDocumentedQueries checks every query of the dashboard,
// panels and variables: with the data source's macros and the variables
// expanded for the dashboard's default time range (or the panel's own
// relative time) and default values, it must be one of the LTS queries of
// docs/queries.md (whitespace and comments aside), and every query of
// docQueryNames must be on the dashboard. It also checks what the plugin needs to read each target as
// written: the provisioned data source, the SQL editor, a result format
// that fits the panel, and the plugin version (an older or missing one
// makes the plugin migrate the query as a version 3 one).
func TestDashboardRunsDocumentedQueries(t *testing.T) {
	setup := grafana(t)
	d := loadDashboard(t)
	byText := map[string]string{}
	var lts []Query
	for _, q := range loadDocQueries(t) {
		if q.For(ServerLTS) {
			byText[Normalize(q.SQL)] = q.Name
			lts = append(lts, q)
		}
	}

	rng, err := RelativeRange(d.TimeFrom, d.TimeTo)
	if err != nil {
		t.Fatalf("%s: default time range: %v", dashboardFile, err)
	}
	vars := map[string]string{}
	for _, v := range d.Variables {
		vars[v.Name] = v.Current
	}
	exp := Expander{Range: rng, Vars: vars}

	shown := map[string]bool{}
	for _, q := range d.Queries {
		if q.Datasource != setup.datasource {
			t.Errorf("%s: data source %+v, want the provisioned %+v", q.Where, q.Datasource, setup.datasource)
		}
		if q.PanelType != "" {
			if q.EditorType != "sql" {
				t.Errorf("%s: editorType %q, want sql", q.Where, q.EditorType)
			}
			if q.PluginVersion != setup.pluginVersion {
				t.Errorf("%s: pluginVersion %q, want the installed %s", q.Where, q.PluginVersion, setup.pluginVersion)
			}
			wantType, wantFormat := "table", 1
			if q.PanelType == "timeseries" {
				wantType, wantFormat = "timeSeries", 0
			}
			if q.QueryType != wantType || q.Format == nil || *q.Format != wantFormat {
				t.Errorf("%s: a %s panel with queryType %q and format %v, want %q and %d", q.Where, q.PanelType, q.QueryType, fmtPtr(q.Format), wantType, wantFormat)
			}
		}
		e := exp
		if q.TimeShift != "" {
			t.Errorf("%s: the panel shifts its time (timeShift %q), which the check does not follow", q.Where, q.TimeShift)
			continue
		}
		if q.TimeFrom != "" {
			if e.Range, err = PanelRange(q.TimeFrom); err != nil {
				t.Errorf("%s: the panel's own time range: %v", q.Where, err)
				continue
			}
		}
		sql, err := e.Expand(q.RawSQL)
		if err != nil {
			t.Errorf("%s: %v", q.Where, err)
			continue
		}
		norm := Normalize(sql)
		name, ok := byText[norm]
		if !ok {
			t.Errorf("%s: its query is none of the LTS queries of %s.\nExpanded:\n%s\n%s",
				q.Where, docFile, sql, closest(norm, lts))
			continue
		}
		shown[name] = true
	}
	for _, q := range lts {
		if !shown[q.Name] && slices.Contains(docQueryNames, q.Name) {
			t.Errorf("%s: query %s is on no panel and in no variable of %s", docFile, q.Name, dashboardFile)
		}
	}
}

func fmtPtr(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}

// closest names the documented query that shares the longest beginning
// with norm, and where they part.
func closest(norm string, qs []Query) string {
	best, bestN := "", -1
	var bestText string
	for _, q := range qs {
		d := Normalize(q.SQL)
		n := 0
		for n < len(d) && n < len(norm) && d[n] == norm[n] {
			n++
		}
		if n > bestN {
			best, bestN, bestText = q.Name, n, d
		}
	}
	if best == "" {
		return "(no LTS query in the document)"
	}
	return fmt.Sprintf("Closest: %s, which continues %q where the dashboard has %q.",
		best, excerpt(bestText, bestN), excerpt(norm, bestN))
}

func excerpt(s string, from int) string {
	s = s[min(from, len(s)):]
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
