// Package querydocs reads the SQL that Sluice documents for analysts: the
// queries of docs/queries.md, each marked with its name and the table
// layout it is written for, and the queries of the Grafana dashboard of the
// compose stack. Its tests run the queries, pin them, and keep the
// dashboard and the document in step.
//
// A query in docs/queries.md is a fenced sql block introduced by an HTML
// comment on the line before it (blank lines between are allowed):
//
//	<!-- query: latest_value_per_device; server: 18.16 -->
//	```sql
//	SELECT ...;
//	```
//
// server is 18.16 (the legacy layout: Nested arrays, ts + ts_ms), lts (the
// current LTS's layout: Map, DateTime64) or any (the same text works on
// both, as queries of the rollup tables do). Every sql block must be
// marked, so that no SQL in the document escapes the tests.
package querydocs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Server names the table layout a query is written for.
type Server string

const (
	// Server1816 is ClickHouse 18.16's layout: Nested metrics, tags and
	// attrs (parallel arrays), timestamps as DateTime plus a <name>_ms
	// column.
	Server1816 Server = "18.16"
	// ServerLTS is the current LTS's layout: Map columns, DateTime64(3),
	// LowCardinality strings.
	ServerLTS Server = "lts"
	// ServerAny marks a query whose text is the same on both layouts.
	ServerAny Server = "any"
)

// Query is one documented query.
type Query struct {
	Name   string
	Server Server
	// SQL is the block's text without the surrounding blank space and the
	// trailing semicolon.
	SQL string
	// Line is the line of the marker comment, 1-based.
	Line int
}

// For reports whether q is meant to run on the layout s (Server1816 or
// ServerLTS).
func (q Query) For(s Server) bool { return q.Server == s || q.Server == ServerAny }

var (
	markerLineRE = regexp.MustCompile(`^\s*<!--\s*query\b`)
	markerRE     = regexp.MustCompile(`^\s*<!--(.*)-->\s*$`)
	nameRE       = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fenceRE      = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([A-Za-z0-9_+-]*)")
)

// ParseMarkdown returns the marked queries of a Markdown document in the
// order they appear. It fails on a marker it cannot read, a marker not
// followed by a sql block, a sql block without a marker, a block holding
// more than one statement, and a name given twice for the same layout.
func ParseMarkdown(src []byte) ([]Query, error) {
	var (
		out     []Query
		pending *Query // a marker waiting for its block
		inFence string // the fence that opened the current code block
		isSQL   bool
		body    []string
		seen    = map[string]int{} // name/server -> line
	)
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if inFence != "" {
			if closesFence(line, inFence) {
				if isSQL {
					q := pending
					pending = nil
					sql, err := cleanSQL(strings.Join(body, "\n"))
					if err != nil {
						return nil, fmt.Errorf("line %d: query %s: %w", q.Line, q.Name, err)
					}
					q.SQL = sql
					out = append(out, *q)
				}
				inFence, isSQL, body = "", false, nil
				continue
			}
			if isSQL {
				body = append(body, line)
			}
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			inFence = m[1]
			isSQL = strings.EqualFold(m[2], "sql")
			switch {
			case isSQL && pending == nil:
				return nil, fmt.Errorf("line %d: sql block without a <!-- query: NAME; server: ... --> marker before it", n)
			case !isSQL && pending != nil:
				return nil, fmt.Errorf("line %d: query %s: marker followed by a %q block, not sql", pending.Line, pending.Name, m[2])
			}
			continue
		}
		if markerLineRE.MatchString(line) {
			if pending != nil {
				return nil, fmt.Errorf("line %d: query %s: marker not followed by a sql block", pending.Line, pending.Name)
			}
			q, err := parseMarker(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			q.Line = n
			for _, s := range layoutsOf(q.Server) {
				key := q.Name + "/" + string(s)
				if prev, dup := seen[key]; dup {
					return nil, fmt.Errorf("line %d: query %s for %s is already given at line %d", n, q.Name, s, prev)
				}
				seen[key] = n
			}
			pending = &q
			continue
		}
		if pending != nil && strings.TrimSpace(line) != "" {
			return nil, fmt.Errorf("line %d: query %s: marker not followed by a sql block", pending.Line, pending.Name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inFence != "" {
		return nil, fmt.Errorf("unclosed code block at the end")
	}
	if pending != nil {
		return nil, fmt.Errorf("line %d: query %s: marker not followed by a sql block", pending.Line, pending.Name)
	}
	return out, nil
}

// closesFence reports whether line closes a code block opened by fence:
// the same character, at least as many times, and nothing else.
func closesFence(line, fence string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= len(fence) && strings.Trim(t, fence[:1]) == ""
}

func layoutsOf(s Server) []Server {
	if s == ServerAny {
		return []Server{Server1816, ServerLTS}
	}
	return []Server{s}
}

// parseMarker reads "<!-- query: NAME; server: 18.16 -->".
func parseMarker(line string) (Query, error) {
	m := markerRE.FindStringSubmatch(line)
	if m == nil {
		return Query{}, fmt.Errorf("query marker %q: want <!-- query: NAME; server: 18.16|lts|any --> on one line", strings.TrimSpace(line))
	}
	var q Query
	for _, part := range strings.Split(m[1], ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return Query{}, fmt.Errorf("query marker %q: %q is not key: value", strings.TrimSpace(line), strings.TrimSpace(part))
		}
		switch k {
		case "query":
			if !nameRE.MatchString(v) {
				return Query{}, fmt.Errorf("query marker: name %q: want lower-case letters, digits and _", v)
			}
			q.Name = v
		case "server":
			switch s := Server(v); s {
			case Server1816, ServerLTS, ServerAny:
				q.Server = s
			default:
				return Query{}, fmt.Errorf("query marker: server %q: want 18.16, lts or any", v)
			}
		default:
			return Query{}, fmt.Errorf("query marker: unknown key %q (query, server)", k)
		}
	}
	if q.Name == "" || q.Server == "" {
		return Query{}, fmt.Errorf("query marker %q: needs both query and server", strings.TrimSpace(line))
	}
	return q, nil
}

// cleanSQL trims a block and its final semicolon, and refuses a block that
// holds more than one statement or none.
func cleanSQL(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
	if s == "" {
		return "", fmt.Errorf("empty sql block")
	}
	if strings.Contains(stripQuoted(s), ";") {
		return "", fmt.Errorf("more than one statement in one sql block")
	}
	return s, nil
}

// stripQuoted blanks out string literals and quoted identifiers, so that
// what is left can be searched for SQL syntax.
func stripQuoted(s string) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(s) {
				i++
			} else if c == quote {
				quote = 0
				b.WriteByte(c)
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Normalize returns sql with comments removed, every run of blank space
// outside quotes turned into one space, and no trailing semicolon: two
// queries that differ only in layout normalize to the same text.
func Normalize(sql string) string {
	var b strings.Builder
	space := false
	emit := func(c byte) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			emit(c)
			for i++; i < len(sql); i++ {
				b.WriteByte(sql[i])
				if sql[i] == '\\' && i+1 < len(sql) {
					i++
					b.WriteByte(sql[i])
				} else if sql[i] == c {
					break
				}
			}
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			space = true
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				i = len(sql)
			} else {
				i += 2 + end + 1
			}
			space = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = true
		default:
			emit(c)
		}
	}
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(b.String()), ";"))
}

// ---------------------------------------------------------------------------
// The Grafana dashboard

// DatasourceRef is a panel's or a target's data source.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// DashboardQuery is one query of a dashboard: a panel's target or a query
// variable's definition.
type DashboardQuery struct {
	// Where says which panel and target, or which variable, for messages.
	Where string
	// PanelType is the panel's visualization; empty for a variable.
	PanelType  string
	Datasource DatasourceRef
	RawSQL     string
	// The ClickHouse plugin's target fields (empty for a variable).
	EditorType    string
	QueryType     string
	Format        *int
	PluginVersion string
	// TimeFrom and TimeShift are the panel's own relative time range and
	// shift ("24h"), which replace the dashboard's; empty for none.
	TimeFrom, TimeShift string
}

// Variable is one template variable of a dashboard.
type Variable struct {
	Name    string
	Type    string
	Current string
}

// Dashboard is what the tests need of a Grafana dashboard.
type Dashboard struct {
	UID, Title       string
	TimeFrom, TimeTo string
	Variables        []Variable
	Queries          []DashboardQuery
}

type rawDashboard struct {
	UID   string `json:"uid"`
	Title string `json:"title"`
	Time  struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Panels     []rawPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
			Current    struct {
				Value json.RawMessage `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type rawPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	TimeFrom   string          `json:"timeFrom"`
	TimeShift  string          `json:"timeShift"`
	Targets    []struct {
		RefID         string          `json:"refId"`
		Datasource    json.RawMessage `json:"datasource"`
		RawSQL        *string         `json:"rawSql"`
		EditorType    string          `json:"editorType"`
		QueryType     string          `json:"queryType"`
		Format        *int            `json:"format"`
		PluginVersion string          `json:"pluginVersion"`
	} `json:"targets"`
	Panels []rawPanel `json:"panels"` // a collapsed row's panels
}

// ParseDashboard reads a dashboard's JSON model: its time range, its
// variables, and every panel target and query variable, rows included. A
// target without rawSql (a query builder one) is an error, since its SQL
// could not be checked.
func ParseDashboard(b []byte) (*Dashboard, error) {
	var raw rawDashboard
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	d := &Dashboard{UID: raw.UID, Title: raw.Title, TimeFrom: raw.Time.From, TimeTo: raw.Time.To}
	for _, v := range raw.Templating.List {
		cur := ""
		if len(v.Current.Value) > 0 {
			if err := json.Unmarshal(v.Current.Value, &cur); err != nil {
				return nil, fmt.Errorf("dashboard: variable %s: current value is not one string: %s", v.Name, v.Current.Value)
			}
		}
		d.Variables = append(d.Variables, Variable{Name: v.Name, Type: v.Type, Current: cur})
		if v.Type != "query" {
			continue
		}
		// The ClickHouse plugin stores a variable's query as a string, or
		// (newer versions) as an object with rawSql.
		var sql string
		if err := json.Unmarshal(v.Query, &sql); err != nil {
			var obj struct {
				RawSQL string `json:"rawSql"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("dashboard: variable %s: query: %w", v.Name, err)
			}
			sql = obj.RawSQL
		}
		ds, err := datasourceRef(v.Datasource)
		if err != nil {
			return nil, fmt.Errorf("dashboard: variable %s: %w", v.Name, err)
		}
		d.Queries = append(d.Queries, DashboardQuery{Where: "variable " + v.Name, Datasource: ds, RawSQL: sql})
	}
	var walk func(ps []rawPanel) error
	walk = func(ps []rawPanel) error {
		for _, p := range ps {
			pds, err := datasourceRef(p.Datasource)
			if err != nil {
				return fmt.Errorf("dashboard: panel %d %q: %w", p.ID, p.Title, err)
			}
			for _, t := range p.Targets {
				where := fmt.Sprintf("panel %d %q, target %s", p.ID, p.Title, t.RefID)
				if t.RawSQL == nil {
					return fmt.Errorf("dashboard: %s: no rawSql", where)
				}
				ds := pds
				if len(t.Datasource) > 0 {
					if ds, err = datasourceRef(t.Datasource); err != nil {
						return fmt.Errorf("dashboard: %s: %w", where, err)
					}
				}
				d.Queries = append(d.Queries, DashboardQuery{
					Where: where, PanelType: p.Type, Datasource: ds, RawSQL: *t.RawSQL,
					EditorType: t.EditorType, QueryType: t.QueryType, Format: t.Format, PluginVersion: t.PluginVersion,
					TimeFrom: p.TimeFrom, TimeShift: p.TimeShift,
				})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(raw.Panels); err != nil {
		return nil, err
	}
	return d, nil
}

// datasourceRef reads a data source given as {"type", "uid"}; a bare
// string (the old form, a data source name) is kept as its UID so that it
// fails a comparison with the provisioned UID rather than passing silently.
func datasourceRef(raw json.RawMessage) (DatasourceRef, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DatasourceRef{}, nil
	}
	var ref DatasourceRef
	if err := json.Unmarshal(raw, &ref); err == nil {
		return ref, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return DatasourceRef{}, fmt.Errorf("datasource %s: neither {type, uid} nor a name", raw)
	}
	return DatasourceRef{UID: name}, nil
}

// ---------------------------------------------------------------------------
// Expanding Grafana's macros and variables

// TimeRange is a dashboard time range as SQL expressions, what the
// ClickHouse data source puts in place of its time macros.
type TimeRange struct {
	From, To string
}

// AbsoluteRange is the range [from, to] as the ClickHouse data source
// writes it when it runs a query: toDateTime(<unix seconds>).
func AbsoluteRange(from, to time.Time) TimeRange {
	return TimeRange{
		From: fmt.Sprintf("toDateTime(%d)", from.Unix()),
		To:   fmt.Sprintf("toDateTime(%d)", to.Unix()),
	}
}

var relTimeRE = regexp.MustCompile(`^now(?:-([1-9][0-9]*)([smhdw]))?$`)

// RelativeRange turns a dashboard's relative time range ("now-1h" to
// "now") into SQL relative to the server's clock (now() - INTERVAL 1 HOUR
// to now()): the same instants the data source computes and sends when the
// dashboard opens with its default range. Only "now" and "now-<n><unit>"
// are understood (units s, m, h, d, w).
func RelativeRange(from, to string) (TimeRange, error) {
	f, err := relativeTime(from)
	if err != nil {
		return TimeRange{}, err
	}
	t, err := relativeTime(to)
	if err != nil {
		return TimeRange{}, err
	}
	return TimeRange{From: f, To: t}, nil
}

// PanelRange is the range a panel with its own relative time (Grafana's
// "timeFrom", such as "24h" or "now-24h") queries: from that time to now.
// It understands the forms RelativeRange does.
func PanelRange(timeFrom string) (TimeRange, error) {
	from := strings.TrimSpace(timeFrom)
	if !strings.HasPrefix(from, "now") {
		from = "now-" + from
	}
	return RelativeRange(from, "now")
}

func relativeTime(s string) (string, error) {
	m := relTimeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", fmt.Errorf("time %q: only now and now-<n><s|m|h|d|w> are understood", s)
	}
	if m[1] == "" {
		return "now()", nil
	}
	unit := map[string]string{"s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY", "w": "WEEK"}[m[2]]
	return "now() - INTERVAL " + m[1] + " " + unit, nil
}

// Expander replaces the ClickHouse data source's time macros and Grafana's
// template variables in a dashboard query.
type Expander struct {
	Range TimeRange
	// Vars holds each variable's value.
	Vars map[string]string
}

var (
	macroRE = regexp.MustCompile(`\$__([A-Za-z_]+)(\(([^()]*)\))?`)
	varRE   = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::([A-Za-z]+))?\}|\$([A-Za-z][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)\]\]`)
)

// Expand returns sql with its macros and variables replaced. It supports
// $__timeFilter(column), $__fromTime and $__toTime, and variables as
// $name, ${name}, ${name:raw}, ${name:singlequote} and ${name:sqlstring}
// (and the old [[name]]); anything else is an error rather than a guess.
func (e Expander) Expand(sql string) (string, error) {
	var errs []string
	out := macroRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := macroRE.FindStringSubmatch(m)
		name, hasArgs, arg := sub[1], sub[2] != "", strings.TrimSpace(sub[3])
		switch {
		case name == "timeFilter" && hasArgs && arg != "" && !strings.Contains(arg, ","):
			return fmt.Sprintf("%s >= %s AND %s <= %s", arg, e.Range.From, arg, e.Range.To)
		case name == "fromTime" && (!hasArgs || arg == ""):
			return e.Range.From
		case name == "toTime" && (!hasArgs || arg == ""):
			return e.Range.To
		}
		errs = append(errs, "unsupported macro "+m)
		return m
	})
	out = varRE.ReplaceAllStringFunc(out, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		name, format := sub[1], sub[2]
		if name == "" {
			name = sub[3] + sub[4]
		}
		v, ok := e.Vars[name]
		if !ok {
			errs = append(errs, "unknown variable "+m)
			return m
		}
		switch format {
		case "", "raw":
			return v
		case "singlequote":
			return "'" + strings.ReplaceAll(v, "'", `\'`) + "'"
		case "sqlstring":
			return "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		errs = append(errs, "unsupported variable format "+m)
		return m
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// PluginMajor returns the major version of a plugin version string such as
// "4.15.0", or -1.
func PluginMajor(v string) int {
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return -1
	}
	return n
}
