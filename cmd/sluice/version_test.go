package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/buildinfo"
)

func TestVersionCommand(t *testing.T) {
	info := buildinfo.Get()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sluice " + info.Version + "\n", "commit:     " + info.Revision, "built:      " + info.Date, "go version: " + info.GoVersion} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

// TestMakeBuildStampsVersion builds the binary with the Makefile's own
// build line and checks that `sluice version` reports what it stamped,
// and that the Dockerfile stamps the same variables.
func TestMakeBuildStampsVersion(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed: `make test` needs it anyway")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "-s", "-C", "../..", "build", "BIN="+bin,
		"VERSION=v9.8.7-test", "REVISION=feedfacefeedface", "BUILD_DATE=2026-01-02T03:04:05Z")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("sluice version --json: %v", err)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("sluice version --json: %v\n%s", err, out)
	}
	want := buildinfo.Info{Version: "v9.8.7-test", Revision: "feedfacefeedface", Date: "2026-01-02T03:04:05Z", GoVersion: got.GoVersion}
	if got != want || !strings.HasPrefix(got.GoVersion, "go") {
		t.Errorf("version = %+v, want %+v", got, want)
	}

	// The Dockerfile cannot run make: it must stamp the same variables.
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`-X \$\(BUILDINFO\)\.(\w+)=`).FindAllStringSubmatch(string(mk), -1)
	if len(vars) != 3 {
		t.Fatalf("Makefile stamps %d buildinfo variables, want 3", len(vars))
	}
	build2 := regexp.MustCompile(`go build [^\n]*`).FindString(string(df))
	for _, v := range vars {
		if !strings.Contains(build2, "-X $BI."+v[1]+"=") {
			t.Errorf("Dockerfile's go build line does not stamp %s: %s", v[1], build2)
		}
	}
	if !strings.Contains(string(df), "BI=github.com/sluicehq/sluice/internal/buildinfo") {
		t.Error("Dockerfile: BI is not the buildinfo package")
	}
}
