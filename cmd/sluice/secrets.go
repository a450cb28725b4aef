package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// sourceAnnotation records where a flag's value came from when it was not
// the command line: "env" (applyEnv) or "config" (applyConfigFile). A
// secret given on the command line shows in ps, so it is warned about.
const sourceAnnotation = "sluice/source"

// fromCommandLine reports whether fl was set on the command line itself.
func fromCommandLine(fl *pflag.Flag) bool {
	_, elsewhere := fl.Annotations[sourceAnnotation]
	return fl.Changed && !elsewhere
}

// registerSecret adds --NAME and --NAME-file for one secret (a password,
// say), what being how help text names it. The file form is the one to use:
// Docker and Kubernetes mount secrets as files, and a file's content never
// shows in ps. The value form still works, with a warning.
func registerSecret(f *pflag.FlagSet, name, what string) {
	f.String(name, "", what+" (shows in ps and shell history: prefer --"+name+"-file or SLUICE_"+envSuffix(name)+")")
	f.String(name+"-file", "", "file holding the "+what+"; one trailing line break is ignored")
	markSecret(f, name)
}

func envSuffix(flag string) string { return strings.TrimPrefix(envName(flag), "SLUICE_") }

// secretValue returns the secret registered by registerSecret: from
// --NAME-file, or from --NAME (the environment, the config file or the
// command line, the last with a warning naming the file flag). Both given
// is an error; so is an empty file, which would otherwise turn a password
// off. Errors name the flag and the file, never the secret.
func secretValue(f *pflag.FlagSet, name string, log *slog.Logger) (string, error) {
	val, file := f.Lookup(name), f.Lookup(name+"-file")
	v, path := val.Value.String(), file.Value.String()
	switch {
	case v != "" && path != "":
		return "", fmt.Errorf("give --%s-file or --%s, not both", name, name)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--%s-file: %w", name, err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("--%s-file %s is empty", name, path)
		}
		return s, nil
	case fromCommandLine(val):
		log.Warn("a secret was given as a command-line value, which other users can read in ps and shell history: use a file instead",
			"flag", "--"+name, "use", "--"+name+"-file")
	}
	return v, nil
}

// withSource returns annotations marked with where the value came from
// (see sourceAnnotation), for a flag found through VisitAll or Lookup.
func withSource(a map[string][]string, source string) map[string][]string {
	if a == nil {
		a = map[string][]string{}
	}
	a[sourceAnnotation] = []string{source}
	return a
}

// shownErr is err from setting fl, safe to show: pflag's parse errors
// quote the value, which for a secret must not be seen.
func shownErr(fl *pflag.Flag, err error) error {
	if isSecret(fl) {
		return fmt.Errorf("invalid value (not shown: secret)")
	}
	return err
}
