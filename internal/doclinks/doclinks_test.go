package doclinks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinksResolve: every relative link in the repository's Markdown files
// names a file or directory of the repository.
func TestLinksResolve(t *testing.T) {
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	top := strings.TrimSpace(string(root))
	files, err := exec.Command("git", "-C", top, "ls-files", "*.md").Output()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range strings.Fields(string(files)) {
		b, err := os.ReadFile(filepath.Join(top, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, link := range Relative(string(b)) {
			target := filepath.Clean(filepath.Join(top, filepath.Dir(f), link))
			if rel, err := filepath.Rel(top, target); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links %s, outside the repository", f, link)
				continue
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s links %s, which does not exist", f, link)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no relative link found: the link pattern is broken")
	}
}

func TestRelative(t *testing.T) {
	got := Relative("see [a](docs/a.md#x), [b](https://x.org/y), [c](#here) and [d](../e.md)")
	if strings.Join(got, " ") != "docs/a.md ../e.md" {
		t.Errorf("Relative = %q", got)
	}
}
