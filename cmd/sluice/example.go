package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The reference config and the settings' docs are generated from the
// commands' flags, so that a flag added anywhere shows in both; the tests
// fail when the checked-in files drift. `make generate` runs these.
//
//go:generate go run . config example -o ../../sluice.example.yaml
//go:generate go run . config docs ../../docs/configuration.md

// regenerate is the command that brings the generated files up to date,
// for the drift tests' messages.
const regenerate = "make generate (go generate ./cmd/sluice)"

// docDefaultAnnotation, on a flag whose default depends on the machine
// (a host name), holds the default to show in the generated files instead.
const docDefaultAnnotation = "sluice/doc-default"

// setDocDefault shows def as flag name's default in the generated files.
func setDocDefault(f *pflag.FlagSet, name, def string) {
	_ = f.SetAnnotation(name, docDefaultAnnotation, []string{def})
}

// newConfigCmd returns `sluice config`: `example` prints the reference
// config file, `docs` the tables of docs/configuration.md.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the reference config file, listing every setting",
		Args:  cobra.NoArgs,
		// For the generated files (and the curious): hidden, so that its
		// flags (--output) are no config keys.
		Hidden: true,
	}
	var out string
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a config file with every setting of every command, commented out, with its help and default",
		Long: `example prints the reference config file (sluice.example.yaml in the
source): every key of every command, grouped by topic, each with its help,
the commands that read it, its environment variable and, commented out, its
default. Secrets appear only as their *-file keys. Uncomment what you need.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeOutput(cmd, out, exampleConfig(newRootCmd()))
		},
	}
	example.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	docs := &cobra.Command{
		Use:   "docs [FILE]",
		Short: "Print the settings tables of docs/configuration.md, or update them in FILE",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables := settingsTables(newRootCmd())
			if len(args) == 0 {
				_, err := fmt.Fprint(cmd.OutOrStdout(), tables)
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			doc, err := replaceGenerated(string(b), tables)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return os.WriteFile(args[0], []byte(doc), 0o644)
		},
	}
	cmd.AddCommand(example, docs)
	return cmd
}

func writeOutput(cmd *cobra.Command, path, s string) error {
	if path == "" {
		_, err := fmt.Fprint(cmd.OutOrStdout(), s)
		return err
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// keyDoc is one config key, gathered from every command that has a flag
// of that name.
type keyDoc struct {
	name     string
	commands []string  // the commands that read it, "run", "schema ddl"...
	variants []variant // what it means for them; most keys have one
	secret   bool
	hidden   bool
}

// variant is what a key means for some commands: flags of the same name
// may differ in help and default between commands (loadgen's --rate is
// not bench's).
type variant struct {
	commands []string
	usage    string
	def      string // as YAML
	typ      string
}

// commandOrder puts the commands an operator configures first, in the
// "used by" lists and the variants; the rest follow by name.
var commandOrder = []string{"", "run", "dev", "validate", "verify", "loadgen", "bench", "top"}

func commandRank(name string) int {
	if i := slices.Index(commandOrder, name); i >= 0 {
		return i
	}
	return len(commandOrder)
}

// collectKeys gathers every config key from the live commands under root:
// each command's own flags, and the root's global ones ("" in commands,
// meaning every command). --config and --help are not settings.
func collectKeys(root *cobra.Command) []*keyDoc {
	byName := map[string]*keyDoc{}
	var cmds []*cobra.Command
	visitCommands(root, func(c *cobra.Command) {
		if !hidden(c) && c.Name() != "help" && c.Name() != "completion" {
			cmds = append(cmds, c)
		}
	})
	name := func(c *cobra.Command) string {
		return strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), root.Name()), " ")
	}
	slices.SortStableFunc(cmds, func(a, b *cobra.Command) int {
		return cmp.Or(cmp.Compare(commandRank(name(a)), commandRank(name(b))), cmp.Compare(name(a), name(b)))
	})
	for _, c := range cmds {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == configFlag {
				return
			}
			k := byName[f.Name]
			if k == nil {
				k = &keyDoc{name: f.Name, hidden: true}
				byName[f.Name] = k
			}
			k.commands = append(k.commands, name(c))
			k.secret = k.secret || isSecret(f)
			k.hidden = k.hidden && f.Hidden
			v := variant{usage: f.Usage, def: yamlDefault(f), typ: f.Value.Type()}
			i := slices.IndexFunc(k.variants, func(o variant) bool { return o.usage == v.usage && o.def == v.def && o.typ == v.typ })
			if i < 0 {
				k.variants = append(k.variants, v)
				i = len(k.variants) - 1
			}
			k.variants[i].commands = append(k.variants[i].commands, name(c))
		})
	}
	var keys []*keyDoc
	for _, k := range byName {
		if !k.hidden {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b *keyDoc) int { return cmp.Compare(a.name, b.name) })
	return keys
}

// yamlDefault is flag f's default as a YAML value: lists as flow lists,
// strings quoted where YAML would read them otherwise.
func yamlDefault(f *pflag.Flag) string {
	if d, ok := f.Annotations[docDefaultAnnotation]; ok && len(d) > 0 {
		return yamlScalar(d[0])
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		// A fresh command's value is its default.
		items := make([]string, 0, len(sv.GetSlice()))
		for _, e := range sv.GetSlice() {
			items = append(items, yamlScalar(e))
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	switch f.Value.Type() {
	case "string":
		return yamlScalar(f.DefValue)
	}
	return f.DefValue
}

// yamlScalar is s as a YAML scalar that reads back as the string s.
func yamlScalar(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// usedBy says which commands read a key.
func usedBy(commands []string) string {
	if slices.Contains(commands, "") {
		return "every command"
	}
	return strings.Join(commands, ", ")
}
