package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// secretAnnotation marks a flag whose value must never appear in an error
// or a log line.
const secretAnnotation = "sluice/secret"

// markSecret marks the flag name of f as holding a secret.
func markSecret(f *pflag.FlagSet, name string) {
	_ = f.SetAnnotation(name, secretAnnotation, []string{"true"})
}

// isSecret reports whether f was marked by markSecret.
func isSecret(f *pflag.Flag) bool {
	_, ok := f.Annotations[secretAnnotation]
	return ok
}

// shown is how a flag's value may appear in an error: quoted, or not at
// all for a secret.
func shown(f *pflag.Flag, v string) string {
	if isSecret(f) {
		return "(value not shown: secret)"
	}
	return fmt.Sprintf("%q", v)
}

// registerTokenFlags adds --token and --token-file to f. --token is a
// string array, not a comma-separated list: a token may hold any character
// but a line break, commas included.
func registerTokenFlags(f *pflag.FlagSet, tokens *[]string, file *string) {
	f.StringArrayVar(tokens, "token", nil, "bearer token the collector accepts, taken whole (commas included); repeat the flag for several. A flag value shows in ps and shell history: prefer --token-file. Neither given: no authentication. An empty token is refused")
	f.StringVar(file, "token-file", "", "file of bearer tokens the collector accepts, one per line; blank lines and lines starting with # are skipped. Adds to --token. A file with no token in it is refused")
	markSecret(f, "token")
}

// resolveTokens gathers the bearer tokens of --token and --token-file,
// refusing empty ones: an empty token list means no authentication, and
// that must be asked for by giving no token at all, never happen because a
// variable or a file was empty. Errors and logs never show a token.
func resolveTokens(f *pflag.FlagSet, flagTokens []string, file string, log *slog.Logger) ([]string, error) {
	var tokens []string
	for i, tok := range flagTokens {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return nil, fmt.Errorf("--token (or SLUICE_TOKEN, or token in the config file): value %d is empty; an empty token would turn authentication off. To run without authentication, give no token", i+1)
		}
		tokens = append(tokens, tok)
	}
	if len(tokens) > 0 {
		log.Warn("bearer tokens given as a flag value (--token, SLUICE_TOKEN or the config file) can be read in ps, the environment or shell history: put them in a file and give --token-file",
			"tokens", len(tokens))
	}
	if fl := f.Lookup("token-file"); fl != nil && fl.Changed && file == "" {
		return nil, fmt.Errorf("--token-file (or SLUICE_TOKEN_FILE): empty path; to run without authentication, give no token file")
	}
	if file != "" {
		fromFile, err := readTokenFile(file)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, fromFile...)
	}
	return tokens, nil
}

// readTokenFile reads one token a line, skipping blank lines and comments.
// A file with no token is an error rather than no authentication.
func readTokenFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	var tokens []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("--token-file %s: no token in it (only blank lines and comments); an empty token file would turn authentication off", path)
	}
	return tokens, nil
}
