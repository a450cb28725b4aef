// Package doclinks checks the repository's Markdown: every relative link
// points at a file that exists, and none points outside the repository,
// so that the README and docs/ read whole from a clone. Its test does the
// checking; the package itself only finds the links.
package doclinks

import (
	"regexp"
	"strings"
)

// linkRE matches a Markdown link's target: [text](target).
var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Relative returns the targets of md's links that are paths (not URLs, not
// in-page anchors), without their #anchor part.
func Relative(md string) []string {
	var out []string
	for _, m := range linkRE.FindAllStringSubmatch(md, -1) {
		t := m[1]
		if strings.Contains(t, "://") || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "mailto:") {
			continue
		}
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = t[:i]
		}
		out = append(out, t)
	}
	return out
}
