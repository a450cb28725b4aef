package clickhouse

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/schemas"
)

// Suffixes of the tables a rebuild goes through.
const (
	newSuffix = "__sluice_new"
	oldSuffix = "__sluice_old"
)

// migrationsFor compares an existing table with what Sluice would create
// on a server of version v with options o. Differences that need the rows
// copied (partitioning, sort key, the form of a column) make one rebuild;
// the others are altered in place.
func migrationsFor(db string, st *schemas.Stream, v Version, o TableOptions, ti *tableInfo) []Migration {
	var why []string
	switch {
	case ti.byKafkaPartition():
		why = append(why, "the table has the previous layout, PARTITION BY kafka_partition: no time partitions to prune or drop, and resuming reads a Kafka partition's whole history")
	case normalizeKey(ti.partitionKey) != o.partitionKey():
		why = append(why, fmt.Sprintf("the table is partitioned by %s, the options ask for %s", ti.partitionKey, o.partitionKey()))
	}
	if got, want := sortKey(ti.sortingKey), sortKey(strings.Join(st.OrderBy, ",")); got != want {
		why = append(why, fmt.Sprintf("the table is sorted by (%s), the schema's order_by is (%s)", ti.sortingKey, strings.Join(st.OrderBy, ", ")))
	}
	fl := flavorOf(v)
	if ti.flavor(v) != fl {
		why = append(why, fmt.Sprintf("the table has the column types of ClickHouse 18.16 (DateTime with _ms, Nested, String), and the server, %s, has DateTime64, Map, LowCardinality and codecs", v))
	}
	var alters []string
	for _, want := range wantSlots(st, fl) {
		got, ok := resolve(want, ti.cols)
		switch {
		case !ok && want.src == srcStoredAt:
			// Only the previous layout lacks it, and it is rebuilt.
		case !ok || len(why) > 0:
		case got.form != want.form:
			why = append(why, fmt.Sprintf("column %s is %s, Sluice would create %s", want.name, got.cols[0].typ, want.cols[0].typ))
		case got.cols[0].typ != want.cols[0].typ:
			alters = append(alters, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN %s", TableName(db, st.Table), want.ddl()[0]))
		}
	}
	if len(why) > 0 {
		return []Migration{rebuild(db, st, v, o, ti, why)}
	}
	var out []Migration
	if len(alters) > 0 {
		out = append(out, Migration{Table: db + "." + st.Table, Statements: alters,
			Problem: "column types differ from those Sluice would create on server " + v.String() + "; the ALTERs rewrite the columns in the background"})
	}
	if m, ok := ttlMigration(db, st, v, o, ti); ok {
		out = append(out, m)
	}
	return out
}

func sortKey(k string) string {
	k = normalizeKey(k)
	if k == "tuple()" {
		return ""
	}
	return k
}

// ttlDaysRE finds Sluice's TTL in system.tables' engine_full, which shows
// INTERVAL 90 DAY as toIntervalDay(90).
var ttlDaysRE = regexp.MustCompile(`TTL stored_at \+ (?:toIntervalDay\((\d+)\)|INTERVAL (\d+) DAY)`)

// ttlMigration sets a modern table's TTL to the options'. On older servers
// DropExpired does the TTL's work, so there is nothing to migrate.
func ttlMigration(db string, st *schemas.Stream, v Version, o TableOptions, ti *tableInfo) (Migration, bool) {
	return ttlMigrationOf(db, st.Table, v, o, ti)
}

// ttlMigrationOf is ttlMigration for any of Sluice's tables by name.
func ttlMigrationOf(db, table string, v Version, o TableOptions, ti *tableInfo) (Migration, bool) {
	if !v.Modern() || !ti.byTime() {
		return Migration{}, false
	}
	name := TableName(db, table)
	has, days := ti.ownTTL(), 0
	if m := ttlDaysRE.FindStringSubmatch(ti.engineFull); m != nil {
		days, _ = strconv.Atoi(m[1] + m[2])
	}
	switch {
	case o.TTL <= 0 && has:
		return Migration{Table: db + "." + table, Problem: "the table has a TTL and the options ask for none",
			Statements: []string{"ALTER TABLE " + name + " REMOVE TTL"}}, true
	case o.TTL > 0 && (!has || days != o.ttlDays()):
		now := "none"
		if has {
			now = strings.TrimPrefix(ttlDaysRE.FindString(ti.engineFull), "TTL ")
		}
		return Migration{Table: db + "." + table,
			Problem: fmt.Sprintf("the options ask for a TTL of %d days, the table has %s", o.ttlDays(), now),
			Statements: []string{
				"ALTER TABLE " + name + " MODIFY SETTING ttl_only_drop_parts = 1",
				"ALTER TABLE " + name + " MODIFY TTL " + ttlExpr(o),
			}}, true
	}
	return Migration{}, false
}

// rebuild is the migration that copies the table into a new one, created
// as DDL says, and swaps the two. why lists the reasons, for the Problem.
func rebuild(db string, st *schemas.Stream, v Version, o TableOptions, ti *tableInfo, why []string) Migration {
	cur := TableName(db, st.Table)
	tmp, old := TableName(db, st.Table+newSuffix), TableName(db, st.Table+oldSuffix)
	cols, exprs := copyColumns(st, ti, v)
	create := strings.Replace(createTable(tmp, st, flavorOf(v), o), "CREATE TABLE IF NOT EXISTS", "CREATE TABLE", 1)
	problem := strings.Join(why, "; ")
	if problem != "" {
		problem += ". "
	}
	problem += "Stop the workers of stream " + st.Name + " first (nothing may write the table meanwhile), run the statements, start them again, and once the counts agree drop " + old + "."
	if _, ok := ti.cols[ColStoredAt]; !ok {
		problem += " The copied rows get stored_at = the time of the copy, so the retention counts them from then."
	}
	if strings.HasPrefix(ti.engine, "Replicated") {
		problem += " The table is replicated: give the new table the same Replicated engine before running them."
	}
	return Migration{Table: db + "." + st.Table, Problem: problem, Statements: []string{
		create,
		fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", tmp, strings.Join(cols, ", "), strings.Join(exprs, ", "), cur),
		fmt.Sprintf("RENAME TABLE %s TO %s, %s TO %s", cur, old, tmp, cur),
	}}
}

// copyColumns returns the columns of the new table a rebuild fills and the
// expressions that compute them from the old table's columns. Columns the
// old table cannot provide are left to their defaults.
func copyColumns(st *schemas.Stream, ti *tableInfo, v Version) (cols, exprs []string) {
	have := wantSlots(st, ti.flavor(v))
	for i, want := range wantSlots(st, flavorOf(v)) {
		got, ok := resolve(have[i], ti.cols)
		if !ok {
			if want.src == srcStoredAt {
				cols, exprs = append(cols, Quote(ColStoredAt)), append(exprs, "now()")
			}
			continue
		}
		for j, e := range convert(want, got) {
			cols, exprs = append(cols, Quote(want.cols[j].name)), append(exprs, e)
		}
	}
	return cols, exprs
}

// convert returns, for each column of want, an expression computing it
// from the columns of got.
func convert(want, got slot) []string {
	q := func(i int) string { return Quote(got.cols[i].name) }
	switch {
	case want.form == formTime64 && got.form == formSplitTime:
		return []string{fmt.Sprintf("fromUnixTimestamp64Milli(toInt64(toUnixTimestamp(%s)) * 1000 + %s)", q(0), q(1))}
	case want.form == formSplitTime && got.form == formTime64:
		return []string{"toDateTime(" + q(0) + ")", "toUInt16(toUnixTimestamp64Milli(" + q(0) + ") % 1000)"}
	case want.form == formMap && got.form == formNested:
		return []string{fmt.Sprintf("CAST((%s, %s), '%s')", q(0), q(1), want.cols[0].typ)}
	case want.form == formNested && got.form == formMap:
		return []string{"mapKeys(" + q(0) + ")", "mapValues(" + q(0) + ")"}
	}
	out := make([]string, len(got.cols))
	for i := range got.cols {
		out[i] = q(i)
	}
	return out
}
