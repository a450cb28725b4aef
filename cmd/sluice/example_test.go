package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testkit"
	"github.com/spf13/cobra"
)

// firstDiff describes where got and want first differ, line by line.
func firstDiff(got, want string) string {
	n, gl, wl := testkit.FirstDiff(got, want)
	if n == 0 {
		return "(no difference)"
	}
	return "line " + strconv.Itoa(n) + ":\n  generated: " + gl + "\n  in file:   " + wl
}

// TestGeneratedFilesUpToDate fails when sluice.example.yaml or the tables
// of docs/configuration.md no longer match the commands' flags.
func TestGeneratedFilesUpToDate(t *testing.T) {
	b, err := os.ReadFile("../../sluice.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := exampleConfig(newRootCmd()); got != string(b) {
		t.Errorf("sluice.example.yaml is out of date with the flags: run %s\nfirst difference at %s", regenerate, firstDiff(got, string(b)))
	}

	b, err = os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	got, err := replaceGenerated(string(b), settingsTables(newRootCmd()))
	if err != nil {
		t.Fatalf("docs/configuration.md: %v", err)
	}
	if got != string(b) {
		t.Errorf("docs/configuration.md's settings tables are out of date with the flags: run %s\nfirst difference at %s", regenerate, firstDiff(got, string(b)))
	}
}

// TestExampleListsEverySetting checks the reference config against the
// live commands: every key of every command, secrets only as their file
// keys, and nothing that is no command's key.
func TestExampleListsEverySetting(t *testing.T) {
	example := exampleConfig(newRootCmd())
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#([a-z0-9-]+): `).FindAllStringSubmatch(example, -1) {
		if listed[m[1]] {
			t.Errorf("%s listed twice", m[1])
		}
		listed[m[1]] = true
	}
	known := knownKeys(newRootCmd())
	for k := range listed {
		if !known[k] {
			t.Errorf("%s is listed but is no command's flag", k)
		}
	}
	for _, k := range collectKeys(newRootCmd()) {
		switch {
		case k.secret && listed[k.name]:
			t.Errorf("secret %s is listed; only its file key may be", k.name)
		case !k.secret && !listed[k.name]:
			t.Errorf("%s (%s) is not listed", k.name, usedBy(k.commands))
		}
	}
	for _, must := range []string{"mqtt-password-file", "token-file", "kafka-brokers", "log-level", "rate", "stream"} {
		if !listed[must] {
			t.Errorf("%s is not listed", must)
		}
	}
	if listed[configFlag] || listed["help"] || listed["output"] {
		t.Error("config, help or the hidden config command's output is listed")
	}
}

// TestNewFlagsFlowIntoGeneratedFiles checks that a flag added to any
// command, or a new command, appears in both generated files, under the
// topic its name gives it, with the commands that read it.
func TestNewFlagsFlowIntoGeneratedFiles(t *testing.T) {
	root := newRootCmd()
	run, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	run.Flags().Bool("kafka-zz-test", false, "connect to Kafka over TLS")
	registerSecret(run.Flags(), "kafka-zz-secret", "Kafka SASL password")
	top := &cobra.Command{Use: "zztop", RunE: func(*cobra.Command, []string) error { return nil }}
	top.Flags().StringArray("zz-url", []string{"http://127.0.0.1:8080"}, "status page of a sluice process (repeatable)")
	root.AddCommand(top)

	example := exampleConfig(root)
	kafka := example[strings.Index(example, "\n# Kafka\n"):]
	kafka = kafka[:strings.Index(kafka, "\n\n\n")] // sections end with two blank lines
	for _, want := range []string{"# kafka-zz-test: connect to Kafka over TLS\n#   read by run; environment: SLUICE_KAFKA_ZZ_TEST\n#kafka-zz-test: false\n", "#kafka-zz-secret-file: \"\"\n"} {
		if !strings.Contains(kafka, want) {
			t.Errorf("Kafka section lacks %q:\n%s", want, kafka)
		}
	}
	if strings.Contains(example, "#kafka-zz-secret: ") {
		t.Error("the secret itself is listed")
	}
	for _, want := range []string{"zz-url: status page of a sluice process (repeatable)", "read by zztop"} {
		if !strings.Contains(example, want) {
			t.Errorf("example lacks %q", want)
		}
	}
	docs := settingsTables(root)
	for _, want := range []string{"| `kafka-zz-test` | `SLUICE_KAFKA_ZZ_TEST` | `false` | run | connect to Kafka over TLS |", "| `zz-url` | `SLUICE_ZZ_URL` | `[http://127.0.0.1:8080]` | zztop |"} {
		if !strings.Contains(docs, want) {
			t.Errorf("docs lack %q", want)
		}
	}
}
