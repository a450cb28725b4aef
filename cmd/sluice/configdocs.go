package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// topic is a section of the reference config and of the docs' tables.
type topic struct {
	title    string
	names    []string // keys that belong here
	prefixes []string // and keys starting with one of these
}

// topics group the keys of the long-running commands by the part they
// configure. A flag added later falls into its part by its prefix
// (kafka-..., clickhouse-...); keys read only by the client commands
// (verify, loadgen, bench, top...) get a section per command; anything
// else lands in "Other".
var topics = []topic{
	{title: "General", names: []string{"role", "schemas", "data-dir"}},
	{title: "Logging", prefixes: []string{"log-"}},
	{title: "Memory", names: []string{"memory-limit"}},
	{title: "HTTP collector", names: []string{"max-body-bytes", "token", "token-file", "pprof"}, prefixes: []string{"http-"}},
	{title: "MQTT collector", prefixes: []string{"mqtt-"}},
	{title: "Syslog and RELP collectors", prefixes: []string{"syslog-", "relp-"}},
	{title: "Kafka", names: []string{"topic-prefix", "partitions", "replication-factor", "group-id"}, prefixes: []string{"kafka-"}},
	{title: "Workers", names: []string{"workers", "session-timeout", "rebalance-timeout"}, prefixes: []string{"batch-", "dedupe-"}},
	{title: "ClickHouse", prefixes: []string{"clickhouse-"}},
	{title: "NATS", prefixes: []string{"nats-"}},
}

// serverCommands run the pipeline (or check its settings); "" stands for
// every command (the root's global flags).
var serverCommands = []string{"", "run", "dev", "validate"}

// section is a titled group of keys, in output order.
type section struct {
	title string
	keys  []*keyDoc
}

// sections sorts keys into topics, then a section per client command,
// then "Other".
func sections(keys []*keyDoc) []section {
	out := make([]section, len(topics))
	for i, t := range topics {
		out[i].title = t.title
	}
	var clients []section
	var other []*keyDoc
	for _, k := range keys {
		if !slices.ContainsFunc(k.commands, func(c string) bool { return slices.Contains(serverCommands, c) }) {
			title := "sluice " + k.commands[0]
			i := slices.IndexFunc(clients, func(s section) bool { return s.title == title })
			if i < 0 {
				clients = append(clients, section{title: title})
				i = len(clients) - 1
			}
			clients[i].keys = append(clients[i].keys, k)
			continue
		}
		i := slices.IndexFunc(topics, func(t topic) bool {
			return slices.Contains(t.names, k.name) || slices.ContainsFunc(t.prefixes, func(p string) bool { return strings.HasPrefix(k.name, p) })
		})
		if i < 0 {
			other = append(other, k)
			continue
		}
		out[i].keys = append(out[i].keys, k)
	}
	slices.SortStableFunc(clients, func(a, b section) int {
		an, bn := strings.TrimPrefix(a.title, "sluice "), strings.TrimPrefix(b.title, "sluice ")
		return cmp.Or(cmp.Compare(commandRank(an), commandRank(bn)), cmp.Compare(an, bn))
	})
	out = append(out, clients...)
	out = append(out, section{title: "Other", keys: other})
	return slices.DeleteFunc(out, func(s section) bool { return len(s.keys) == 0 })
}

// exampleHeader opens sluice.example.yaml.
const exampleHeader = `# Sluice's reference configuration: every setting of every command, with its
# help, the commands that read it, its environment variable and its default.
#
# Generated from the commands' flags by 'sluice config example': do not edit.
# After changing a flag, run ` + regenerate + `.
#
# Copy it, uncomment the settings to change, and give it to any command with
# --config FILE (or SLUICE_CONFIG=FILE). Keys are the flag names. One file
# serves every command: each takes the keys it reads and ignores the others;
# a key that no command reads is an error. The command line and SLUICE_<FLAG>
# environment variables win over the file. 'sluice validate --config FILE'
# checks a file without starting anything; docs/configuration.md says more.
`

// exampleConfig renders the reference config file for the commands under
// root: every key, commented out, so that the file as generated is valid
// and changes nothing.
func exampleConfig(root *cobra.Command) string {
	var b strings.Builder
	b.WriteString(exampleHeader)
	keys := collectKeys(root)
	var secrets []string
	for _, k := range keys {
		if k.secret {
			secrets = append(secrets, k.name)
		}
	}
	if len(secrets) > 0 {
		b.WriteString("#\n")
		writeComment(&b, "", "Secrets are not listed ("+strings.Join(secrets, ", ")+"): give them as files with the *-file keys, where there is one, or in SLUICE_ environment variables; a secret in a config file is one more copy to protect.")
	}
	for _, s := range sections(keys) {
		fmt.Fprintf(&b, "\n\n# %s\n# %s\n", s.title, strings.Repeat("=", len(s.title)))
		for _, k := range s.keys {
			if k.secret {
				continue
			}
			b.WriteString("\n")
			writeKey(&b, k)
		}
	}
	return b.String()
}

// writeKey writes one key: its help (per variant when commands differ),
// who reads it, and its default as a commented-out setting.
func writeKey(b *strings.Builder, k *keyDoc) {
	env := "environment: " + envName(k.name)
	if len(k.variants) == 1 {
		writeComment(b, "", k.name+": "+k.variants[0].usage)
		writeComment(b, "  ", "read by "+usedBy(k.commands)+"; "+env)
	} else {
		writeComment(b, "", k.name+": read by "+usedBy(k.commands)+"; "+env)
		for _, v := range k.variants {
			writeComment(b, "  ", usedBy(v.commands)+": "+v.usage+" (default "+v.def+")")
		}
	}
	fmt.Fprintf(b, "#%s: %s\n", k.name, k.variants[0].def)
}

// writeComment writes text as "# " comment lines of at most 78 columns,
// continuation lines indented by indent plus two spaces.
func writeComment(b *strings.Builder, indent, text string) {
	const width = 78
	line := "# " + indent
	start := len(line)
	for _, w := range strings.Fields(text) {
		if len(line) > start && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = "# " + indent + "  "
			start = len(line)
		}
		if len(line) > start {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}

// The generated part of docs/configuration.md lies between these lines;
// the rest of the file is written by hand.
const (
	generatedBegin = "<!-- BEGIN GENERATED by `sluice config docs` from the flags: do not edit; run " + regenerate + " -->"
	generatedEnd   = "<!-- END GENERATED -->"
)

// settingsTables renders the docs' tables: one per section, a row per key
// (per variant where commands differ).
func settingsTables(root *cobra.Command) string {
	var b strings.Builder
	for _, s := range sections(collectKeys(root)) {
		fmt.Fprintf(&b, "\n### %s\n\n", s.title)
		b.WriteString("| Setting | Environment | Default | Read by | Description |\n|---|---|---|---|---|\n")
		for _, k := range s.keys {
			for _, v := range k.variants {
				usage := markdownText(v.usage)
				if k.secret {
					usage = "**Secret.** " + usage
				}
				fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s |\n", k.name, envName(k.name), v.def, usedBy(v.commands), usage)
			}
		}
	}
	return b.String()
}

// markdownText escapes what Markdown would otherwise read as a table
// border, HTML or emphasis.
func markdownText(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "*", `\*`).Replace(s)
}

// replaceGenerated puts tables between doc's generated markers.
func replaceGenerated(doc, tables string) (string, error) {
	before, rest, ok := strings.Cut(doc, generatedBegin)
	if !ok {
		return "", errors.New("no " + generatedBegin + " line")
	}
	_, after, ok := strings.Cut(rest, generatedEnd)
	if !ok {
		return "", errors.New("no " + generatedEnd + " line")
	}
	return before + generatedBegin + "\n" + tables + "\n" + generatedEnd + after, nil
}
