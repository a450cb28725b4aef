package querydocs

import (
	"strings"
	"testing"
	"time"
)

// Tests of the loader itself, on small made-up inputs.

func TestParseMarkdown(t *testing.T) {
	doc := strings.Join([]string{
		"# Title",
		"",
		"```sh",
		"clickhouse-client",
		"```",
		"",
		"<!-- query: one; server: 18.16 -->",
		"```sql",
		"SELECT 1;",
		"```",
		"<!--query:one;server:lts-->",
		"",
		"````SQL",
		"SELECT",
		"    ';' AS semicolon_in_a_string",
		"````",
		"<!-- query: two; server: any -->",
		"~~~sql",
		"SELECT 2",
		"~~~",
		"Inline `<!-- query: x; server: lts -->` is prose.",
	}, "\n")
	qs, err := ParseMarkdown([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Query{
		{Name: "one", Server: Server1816, SQL: "SELECT 1", Line: 7},
		{Name: "one", Server: ServerLTS, SQL: "SELECT\n    ';' AS semicolon_in_a_string", Line: 11},
		{Name: "two", Server: ServerAny, SQL: "SELECT 2", Line: 17},
	}
	if len(qs) != len(want) {
		t.Fatalf("got %d queries %+v, want %d", len(qs), qs, len(want))
	}
	for i := range want {
		if qs[i] != want[i] {
			t.Errorf("query %d: got %+v, want %+v", i, qs[i], want[i])
		}
	}
	if !qs[2].For(Server1816) || !qs[2].For(ServerLTS) || qs[0].For(ServerLTS) {
		t.Error("For: wrong layouts")
	}
}

func TestParseMarkdownErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unmarked sql", "```sql\nSELECT 1\n```", "without a <!-- query"},
		{"marker then prose", "<!-- query: a; server: lts -->\ntext\n```sql\nSELECT 1\n```", "not followed by a sql block"},
		{"marker then other block", "<!-- query: a; server: lts -->\n```sh\nls\n```", "not sql"},
		{"marker at the end", "<!-- query: a; server: lts -->\n", "not followed by a sql block"},
		{"two markers", "<!-- query: a; server: lts -->\n<!-- query: b; server: lts -->\n```sql\nSELECT 1\n```", "not followed by a sql block"},
		{"bad server", "<!-- query: a; server: 19.1 -->\n```sql\nSELECT 1\n```", "want 18.16, lts or any"},
		{"unknown key", "<!-- query: a; server: lts; table: x -->\n```sql\nSELECT 1\n```", "unknown key"},
		{"bad name", "<!-- query: A-b; server: lts -->\n```sql\nSELECT 1\n```", "lower-case"},
		{"no server", "<!-- query: a -->\n```sql\nSELECT 1\n```", "needs both"},
		{"split marker", "<!-- query: a;\nserver: lts -->\n```sql\nSELECT 1\n```", "on one line"},
		{"duplicate", "<!-- query: a; server: lts -->\n```sql\nSELECT 1\n```\n<!-- query: a; server: lts -->\n```sql\nSELECT 2\n```", "already given"},
		{"any and one", "<!-- query: a; server: any -->\n```sql\nSELECT 1\n```\n<!-- query: a; server: 18.16 -->\n```sql\nSELECT 2\n```", "already given"},
		{"two statements", "<!-- query: a; server: lts -->\n```sql\nSELECT 1; SELECT 2\n```", "more than one statement"},
		{"empty", "<!-- query: a; server: lts -->\n```sql\n;\n```", "empty"},
		{"unclosed", "<!-- query: a; server: lts -->\n```sql\nSELECT 1\n", "unclosed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMarkdown([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	a := "SELECT  a,\n\tb -- a comment\nFROM t /* block\ncomment */ WHERE s = 'two  spaces -- kept';\n"
	want := "SELECT a, b FROM t WHERE s = 'two  spaces -- kept'"
	if got := Normalize(a); got != want {
		t.Errorf("Normalize:\n%q\nwant\n%q", got, want)
	}
	if Normalize("SELECT 'it\\'s  x'") != "SELECT 'it\\'s  x'" {
		t.Error("Normalize changed an escaped quote's string")
	}
}

func TestExpand(t *testing.T) {
	rng, err := RelativeRange("now-1h", "now")
	if err != nil {
		t.Fatal(err)
	}
	e := Expander{Range: rng, Vars: map[string]string{"device_id": "sensor-0042", "q": "it's"}}
	got, err := e.Expand("WHERE device_id = ${device_id:singlequote} AND $__timeFilter(ts) AND x = '$device_id' AND y = ${q:sqlstring} AND z = [[device_id]] AND t BETWEEN $__fromTime AND $__toTime()")
	if err != nil {
		t.Fatal(err)
	}
	want := "WHERE device_id = 'sensor-0042' AND ts >= now() - INTERVAL 1 HOUR AND ts <= now() AND x = 'sensor-0042' AND y = 'it''s' AND z = sensor-0042 AND t BETWEEN now() - INTERVAL 1 HOUR AND now()"
	if got != want {
		t.Errorf("Expand:\n%s\nwant\n%s", got, want)
	}
	if got, _ := e.Expand("${q:singlequote}"); got != `'it\'s'` {
		t.Errorf("singlequote: %s", got)
	}
	for _, bad := range []string{"$__timeInterval(ts)", "$__timeFilter_ms(ts)", "$__timeFilter()", "${nope}", "${device_id:csv}", "$__conditionalAll(a, $device_id)"} {
		if _, err := e.Expand(bad); err == nil {
			t.Errorf("Expand(%q): no error", bad)
		}
	}
}

func TestRanges(t *testing.T) {
	for in, want := range map[[2]string]TimeRange{
		{"now-1h", "now"}:    {"now() - INTERVAL 1 HOUR", "now()"},
		{"now-15m", "now"}:   {"now() - INTERVAL 15 MINUTE", "now()"},
		{"now-7d", "now-1d"}: {"now() - INTERVAL 7 DAY", "now() - INTERVAL 1 DAY"},
	} {
		got, err := RelativeRange(in[0], in[1])
		if err != nil || got != want {
			t.Errorf("RelativeRange(%q, %q) = %+v, %v; want %+v", in[0], in[1], got, err, want)
		}
	}
	for _, bad := range []string{"now/d", "now-1M", "2026-11-24", "now+1h"} {
		if _, err := RelativeRange(bad, "now"); err == nil {
			t.Errorf("RelativeRange(%q): no error", bad)
		}
	}
	for in, want := range map[string]TimeRange{
		"24h":    {"now() - INTERVAL 24 HOUR", "now()"},
		"now-7d": {"now() - INTERVAL 7 DAY", "now()"},
		" 15m ":  {"now() - INTERVAL 15 MINUTE", "now()"},
	} {
		if got, err := PanelRange(in); err != nil || got != want {
			t.Errorf("PanelRange(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := PanelRange("now/d"); err == nil {
		t.Error("PanelRange(now/d): no error")
	}
	// What the data source sends for a concrete range: the same shape.
	from := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	e := Expander{Range: AbsoluteRange(from, from.Add(time.Hour))}
	got, err := e.Expand("WHERE $__timeFilter(ts)")
	if want := "WHERE ts >= toDateTime(1795514400) AND ts <= toDateTime(1795518000)"; err != nil || got != want {
		t.Errorf("absolute range: %s, %v; want %s", got, err, want)
	}
}

func TestParseDashboard(t *testing.T) {
	const js = `{
	  "uid": "u", "title": "T", "time": {"from": "now-6h", "to": "now"},
	  "templating": {"list": [
	    {"name": "dev", "type": "query", "datasource": {"type": "x", "uid": "ds"}, "query": "SELECT 1", "current": {"value": "a"}},
	    {"name": "new", "type": "query", "datasource": {"type": "x", "uid": "ds"}, "query": {"rawSql": "SELECT 2", "queryType": "sql"}, "current": {"value": "b"}},
	    {"name": "tb", "type": "textbox", "query": "free text", "current": {"value": "c"}}
	  ]},
	  "panels": [
	    {"id": 1, "type": "row", "title": "r", "collapsed": true, "panels": [
	      {"id": 2, "type": "table", "title": "p", "datasource": {"type": "x", "uid": "ds"},
	       "targets": [{"refId": "A", "rawSql": "SELECT 3", "editorType": "sql", "queryType": "table", "format": 1, "pluginVersion": "4.15.0"}]}
	    ]},
	    {"id": 3, "type": "timeseries", "title": "q", "datasource": "legacy name", "timeFrom": "24h",
	     "targets": [{"refId": "B", "datasource": {"type": "y", "uid": "other"}, "rawSql": "SELECT 4"}]}
	  ]
	}`
	d, err := ParseDashboard([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if d.UID != "u" || d.TimeFrom != "now-6h" || d.TimeTo != "now" || len(d.Variables) != 3 || d.Variables[2].Current != "c" {
		t.Errorf("dashboard: %+v", d)
	}
	var sqls []string
	for _, q := range d.Queries {
		sqls = append(sqls, q.RawSQL)
	}
	if got := strings.Join(sqls, ","); got != "SELECT 1,SELECT 2,SELECT 3,SELECT 4" {
		t.Errorf("queries: %s", got)
	}
	if q := d.Queries[2]; q.Datasource.UID != "ds" || q.QueryType != "table" || q.Format == nil || *q.Format != 1 || q.PluginVersion != "4.15.0" || q.PanelType != "table" {
		t.Errorf("row panel target: %+v", q)
	}
	if q := d.Queries[3]; q.Datasource.UID != "other" || q.TimeFrom != "24h" {
		t.Errorf("target datasource should win over the panel's, and the panel's timeFrom be kept: %+v", q)
	}
	if _, err := ParseDashboard([]byte(`{"panels": [{"id": 1, "targets": [{"refId": "A"}]}]}`)); err == nil {
		t.Error("a target without rawSql: no error")
	}
	if PluginMajor("4.15.0") != 4 || PluginMajor("v3.1") != 3 || PluginMajor("") != -1 {
		t.Error("PluginMajor")
	}
}
