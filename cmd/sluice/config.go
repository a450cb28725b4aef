package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// configFlag names the config file. It is a flag of the root command, so
// that every command reads the same file; a file cannot name another.
const configFlag = "config"

// configHelp is --config's help; `sluice --help` and docs/configuration.md
// say more.
const configHelp = "YAML file of settings keyed by flag name (sluice.example.yaml lists them all); each command takes the keys it knows and ignores those of other commands. The command line and SLUICE_ variables win over it"

// setting is one key of a config file with its value, in file order.
type setting struct {
	key   string
	line  int
	value *yaml.Node
}

// readSettings reads the config file at path: a YAML mapping from flag
// names to values. The settings come back in file order, so that the first
// bad one is the one reported, whatever Go's map order.
func readSettings(path string) ([]setting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	// A second document would be ignored: say so instead. An empty one
	// (a trailing ---) sets nothing and is let be.
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || !emptyDocument(&more) {
			return nil, fmt.Errorf("config %s: want one YAML document of settings, found more (a --- line?)", path)
		}
	}
	if emptyDocument(&doc) {
		return nil, nil // an empty file (or only comments) sets nothing
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: want a mapping of settings keyed by flag name (key: value lines), got %s", path, nodeKind(m))
	}
	var out []setting
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s: line %d: a setting's key must be a flag name, not %s", path, k.Line, nodeKind(k))
		}
		if first, dup := seen[k.Value]; dup {
			return nil, fmt.Errorf("config %s: line %d: %q is set twice (first on line %d)", path, k.Line, k.Value, first)
		}
		seen[k.Value] = k.Line
		out = append(out, setting{key: k.Value, line: k.Line, value: v})
	}
	return out, nil
}

// emptyDocument reports whether doc holds nothing: no content, or null.
func emptyDocument(doc *yaml.Node) bool {
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return true
	}
	c := doc.Content[0]
	return c.Kind == yaml.ScalarNode && c.Tag == "!!null"
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "nothing"
}

// applyConfigFile sets, from the config file at path, every flag of cmd
// that neither the command line nor the environment set. Keys of other
// commands' flags are skipped: one file serves every command. A key that
// is no command's flag is an error, which suggests the nearest known key,
// since a misspelt setting silently ignored is the worst kind of bug.
func applyConfigFile(cmd *cobra.Command, path string) error {
	settings, err := readSettings(path)
	if err != nil {
		return err
	}
	known := knownKeys(cmd.Root())
	for _, s := range settings {
		at := fmt.Sprintf("config %s: line %d", path, s.line)
		if s.key == configFlag {
			return fmt.Errorf("%s: %s: a config file cannot name another config file", at, s.key)
		}
		f := lookupFlag(cmd, s.key)
		if f == nil || s.key == "help" {
			if known[s.key] {
				continue // another command's setting
			}
			return fmt.Errorf("%s: unknown setting %q%s (settings are the flags of the sluice commands, listed in sluice.example.yaml)",
				at, s.key, suggestion(s.key, known))
		}
		if f.Changed {
			continue // the command line or the environment won
		}
		if err := setFromYAML(f, s.value); err != nil {
			return fmt.Errorf("%s: %s: %w", at, s.key, err)
		}
		f.Changed = true
		f.Annotations = withSource(f.Annotations, "config")
	}
	return nil
}

// lookupFlag finds the flag name among cmd's own flags and those it
// inherits, whether or not the command line was parsed yet.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

// setFromYAML sets flag f from a YAML value: a scalar as written (so that
// 0x10 and 18.16 reach the flag's parser unchanged), a list element by
// element for a list flag (joined with commas, a list of tokens would
// become one token), or a one-element list for any flag. A mapping, or a
// list where one value is wanted, is the wrong type and refused.
func setFromYAML(f *pflag.Flag, v *yaml.Node) error {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.ScalarNode:
		s, err := scalarText(v)
		if err != nil {
			return err
		}
		return setErr(f, f.Value.Set(s))
	case yaml.SequenceNode:
		parts := make([]string, 0, len(v.Content))
		for _, e := range v.Content {
			if e.Kind == yaml.AliasNode && e.Alias != nil {
				e = e.Alias
			}
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("want a list of values, got %s in it", nodeKind(e))
			}
			s, err := scalarText(e)
			if err != nil {
				return err
			}
			parts = append(parts, s)
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok && len(parts) > 0 {
			return setErr(f, sv.Replace(parts))
		}
		if len(parts) == 0 {
			// As an empty value: --kafka-brokers then says it is required,
			// --token refuses an empty token rather than turn
			// authentication off.
			return setErr(f, f.Value.Set(""))
		}
		if len(parts) == 1 {
			return setErr(f, f.Value.Set(parts[0]))
		}
		return fmt.Errorf("want one %s value, got a list of %d", f.Value.Type(), len(parts))
	}
	return fmt.Errorf("want a %s value, got %s", f.Value.Type(), nodeKind(v))
}

// scalarText is a scalar's text for a flag's parser: null is empty, a
// string is its decoded content (quotes, escapes and !!binary undone),
// anything else (numbers, booleans) is the literal the user wrote.
func scalarText(v *yaml.Node) (string, error) {
	if v.Tag == "!!null" {
		return "", nil
	}
	var x any
	if err := v.Decode(&x); err != nil {
		return "", err
	}
	if s, ok := x.(string); ok {
		return s, nil
	}
	return v.Value, nil
}

// knownKeys is the set of every command's flag names: the keys a config
// file may hold. help and config itself are not settings, nor the flags of
// hidden commands.
func knownKeys(root *cobra.Command) map[string]bool {
	keys := map[string]bool{}
	visitCommands(root, func(c *cobra.Command) {
		if hidden(c) {
			return
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && f.Name != configFlag {
				keys[f.Name] = true
			}
		})
	})
	return keys
}

// visitCommands calls fn for root and every command below it.
func visitCommands(root *cobra.Command, fn func(*cobra.Command)) {
	fn(root)
	for _, c := range root.Commands() {
		visitCommands(c, fn)
	}
}

// hidden reports whether c or a command above it is hidden: not for
// operators, so its flags are no settings.
func hidden(c *cobra.Command) bool {
	for ; c != nil; c = c.Parent() {
		if c.Hidden {
			return true
		}
	}
	return false
}

// suggestion says which known key the unknown one probably meant: the
// nearest by edit distance, when it is near enough to be a typo.
func suggestion(key string, known map[string]bool) string {
	best, bestDist := "", -1
	names := make([]string, 0, len(known))
	for k := range known {
		names = append(names, k)
	}
	slices.Sort(names) // ties go to the same key every time
	for _, k := range names {
		if d := editDistance(key, k); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > max(2, len(key)/3) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, the number of
// one-byte insertions, deletions and substitutions that turn one into the
// other. Written out rather than imported: flag names are short ASCII, and
// this is the whole algorithm.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// setErr is err from setting f, safe to show (see shownErr), or nil.
func setErr(f *pflag.Flag, err error) error {
	if err == nil {
		return nil
	}
	return shownErr(f, err)
}
