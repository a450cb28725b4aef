// Package compose holds the Docker Compose demo stack (docker-compose.yml,
// sluice.yaml) and this test, which checks offline, without Docker, what
// would otherwise only break when someone runs the stack: service names and
// addresses that do not match, a config file `sluice run` would refuse,
// healthchecks on the wrong port, ports open beyond loopback, floating image
// tags, a Dockerfile whose Go version lags go.mod.
package compose

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const composeFile = "docker-compose.yml"

// The services the README and the other services rely on.
var requiredServices = []string{"kafka", "clickhouse", "nats", "nats-init", "mosquitto", "sluice-ingest", "sluice-worker", "loadgen", "loadgen-mqtt", "prometheus", "grafana"}

// ---------------------------------------------------------------------------
// Loading

type composeDoc struct {
	Services map[string]map[string]any
	Volumes  map[string]any
}

func loadCompose(t *testing.T) composeDoc {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	raw = interpolate(raw).(map[string]any)
	doc := composeDoc{Services: map[string]map[string]any{}}
	svcs, ok := raw["services"].(map[string]any)
	if !ok || len(svcs) == 0 {
		t.Fatalf("%s: no services", composeFile)
	}
	for name, v := range svcs {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("service %s: not a mapping", name)
		}
		doc.Services[name] = m
	}
	if v, ok := raw["volumes"].(map[string]any); ok {
		doc.Volumes = v
	}
	return doc
}

// interpolate applies Compose's variable substitution with the defaults
// written in the file (${VAR:-default}, ${VAR-default}; ${VAR} is empty),
// ignoring the caller's environment so that the test is deterministic, and
// turns $$ into $.
func interpolate(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = interpolate(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = interpolate(e)
		}
		return x
	case string:
		return expand(x)
	default:
		return v
	}
}

var varRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func expand(s string) string {
	return varRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := varRE.FindStringSubmatch(m)
		switch strings.TrimPrefix(sub[2], ":") {
		case "-":
			return sub[3]
		default: // unset variable, ${VAR:?err} or ${VAR:+alt}
			return ""
		}
	})
}

// Accessors for Compose's alternative syntaxes.

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// list returns a string or a list of scalars as strings (command,
// entrypoint, healthcheck test, profiles).
func list(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			out[i] = str(e)
		}
		return out
	}
	return []string{str(v)}
}

// env returns a service's environment, in map or KEY=VALUE list form.
func env(svc map[string]any) map[string]string {
	out := map[string]string{}
	switch x := svc["environment"].(type) {
	case map[string]any:
		for k, v := range x {
			out[k] = str(v)
		}
	case []any:
		for _, e := range x {
			k, v, _ := strings.Cut(str(e), "=")
			out[k] = v
		}
	}
	return out
}

// dependsOn returns a service's dependencies and their conditions.
func dependsOn(svc map[string]any) map[string]string {
	out := map[string]string{}
	switch x := svc["depends_on"].(type) {
	case []any:
		for _, e := range x {
			out[str(e)] = "service_started"
		}
	case map[string]any:
		for k, v := range x {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = str(m["condition"])
			}
			out[k] = cond
		}
	}
	return out
}

type portMapping struct {
	hostIP, hostPort, containerPort string
	// protocol is tcp or udp.
	protocol string
}

func ports(t *testing.T, name string, svc map[string]any) []portMapping {
	t.Helper()
	var out []portMapping
	ps, _ := svc["ports"].([]any)
	for _, p := range ps {
		switch x := p.(type) {
		case map[string]any:
			proto := str(x["protocol"])
			if proto == "" {
				proto = "tcp"
			}
			out = append(out, portMapping{str(x["host_ip"]), str(x["published"]), str(x["target"]), proto})
		default:
			s, proto := str(x), "tcp"
			if rest, ok := strings.CutSuffix(s, "/udp"); ok {
				s, proto = rest, "udp"
			}
			s = strings.TrimSuffix(s, "/tcp")
			parts := strings.Split(s, ":")
			switch len(parts) {
			case 1:
				out = append(out, portMapping{"", "", parts[0], proto})
			case 2:
				out = append(out, portMapping{"", parts[0], parts[1], proto})
			case 3:
				out = append(out, portMapping{parts[0], parts[1], parts[2], proto})
			default:
				t.Errorf("service %s: port %q: cannot parse (IPv6 host addresses are not expected here)", name, s)
			}
		}
	}
	return out
}

type mount struct {
	typ, source, target string
}

func mounts(svc map[string]any) []mount {
	var out []mount
	vs, _ := svc["volumes"].([]any)
	for _, v := range vs {
		switch x := v.(type) {
		case map[string]any:
			out = append(out, mount{str(x["type"]), str(x["source"]), str(x["target"])})
		default:
			parts := strings.Split(str(x), ":")
			m := mount{source: parts[0]}
			if len(parts) > 1 {
				m.target = parts[1]
			}
			if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") || strings.HasPrefix(m.source, "~") {
				m.typ = "bind"
			} else {
				m.typ = "volume"
			}
			out = append(out, m)
		}
	}
	return out
}

// flagValue returns the value of --name in args (--name v or --name=v).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// sluiceRunServices returns the services that run `sluice run`.
func sluiceRunServices(doc composeDoc) []string {
	var out []string
	for name, svc := range doc.Services {
		if cmd := list(svc["command"]); len(cmd) > 0 && cmd[0] == "run" && svc["build"] != nil {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// sluiceConfig is a service's mounted --config file: its path on the host and
// its settings.
func sluiceConfig(t *testing.T, name string, svc map[string]any) (string, map[string]any) {
	t.Helper()
	target, ok := flagValue(list(svc["command"]), "config")
	if !ok {
		t.Fatalf("service %s: `sluice run` without --config", name)
	}
	for _, m := range mounts(svc) {
		if m.target != target {
			continue
		}
		if m.typ != "bind" {
			t.Fatalf("service %s: %s is not a bind mount of a file in compose/", name, target)
		}
		b, err := os.ReadFile(m.source)
		if err != nil {
			t.Fatalf("service %s: config %s: %v", name, m.source, err)
		}
		// The same decoding as `sluice run --config`: a YAML map keyed by
		// flag name.
		var settings map[string]any
		if err := yaml.Unmarshal(b, &settings); err != nil {
			t.Fatalf("service %s: config %s: %v", name, m.source, err)
		}
		return m.source, settings
	}
	t.Fatalf("service %s: --config %s is not mounted into the container", name, target)
	return "", nil
}

// ---------------------------------------------------------------------------
// The sluice binary, for its flags and its own config parsing.

var (
	binOnce   sync.Once
	binPath   string
	binBuilt  bool // built here with the Dockerfile's flags (else SLUICE_BIN)
	binErr    error
	binTmpDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binTmpDir != "" {
		os.RemoveAll(binTmpDir)
	}
	os.Exit(code)
}

// sluiceBin returns the sluice binary: $SLUICE_BIN (as `make test` sets it),
// or one built here the way the Dockerfile builds it.
func sluiceBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("SLUICE_BIN"); p != "" {
			if _, err := os.Stat(p); err == nil {
				binPath = p
				return
			}
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binTmpDir, err = os.MkdirTemp("", "sluice-compose-test-")
		if err != nil {
			binErr = err
			return
		}
		out := filepath.Join(binTmpDir, "sluice")
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/sluice")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, b)
			return
		}
		binPath, binBuilt = out, true
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runSluice runs the binary with a clean SLUICE_ environment plus extraEnv.
func runSluice(t *testing.T, extraEnv map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range extraEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("sluice %s: timed out", strings.Join(args, " "))
	}
	return out.String(), err
}

var flagLineRE = regexp.MustCompile(`^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)

// commandFlags returns the local and the global (inherited) flag names of a
// sluice subcommand, from its --help.
func commandFlags(t *testing.T, sub string) (local, global map[string]bool, ok bool) {
	t.Helper()
	out, err := runSluice(t, nil, sub, "--help")
	if err != nil || !strings.Contains(out, "Usage:") || strings.Contains(out, "unknown command") {
		return nil, nil, false
	}
	local, global = map[string]bool{}, map[string]bool{}
	var section map[string]bool
	for _, line := range strings.Split(out, "\n") {
		switch strings.TrimSpace(line) {
		case "Flags:":
			section = local
			continue
		case "Global Flags:":
			section = global
			continue
		case "":
			section = nil
			continue
		}
		if m := flagLineRE.FindStringSubmatch(line); m != nil && section != nil {
			section[m[1]] = true
		}
	}
	delete(local, "help")
	return local, global, true
}

func flagEnvName(flag string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ---------------------------------------------------------------------------
// Tests

func TestServicesAndDependencies(t *testing.T) {
	doc := loadCompose(t)
	for _, name := range requiredServices {
		if doc.Services[name] == nil {
			t.Errorf("service %s is missing", name)
		}
	}
	for name, svc := range doc.Services {
		for dep, cond := range dependsOn(svc) {
			target := doc.Services[dep]
			if target == nil {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
				continue
			}
			switch cond {
			case "service_started":
			case "service_healthy":
				if hc := list(mapOf(target["healthcheck"])["test"]); len(hc) == 0 || hc[0] == "NONE" || mapOf(target["healthcheck"])["disable"] == true {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully":
				if r := str(target["restart"]); r == "always" || r == "unless-stopped" {
					t.Errorf("service %s waits for %s to complete, but %s restarts %s", name, dep, dep, r)
				}
			default:
				t.Errorf("service %s: depends_on %s: unknown condition %q", name, dep, cond)
			}
			if len(list(target["profiles"])) > 0 && len(list(svc["profiles"])) == 0 {
				t.Errorf("service %s depends on %s, which only runs with a profile", name, dep)
			}
		}
	}
	// A service that is scaled must not pin a container name or a host port.
	worker := doc.Services["sluice-worker"]
	if worker["container_name"] != nil {
		t.Error("sluice-worker sets container_name: it could not be scaled")
	}
	if ps := ports(t, "sluice-worker", worker); len(ps) > 0 {
		t.Error("sluice-worker publishes ports: --scale sluice-worker=2 would clash on them")
	}
}

func mapOf(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func TestImagesArePinned(t *testing.T) {
	doc := loadCompose(t)
	for name, svc := range doc.Services {
		img := str(svc["image"])
		if img == "" {
			if svc["build"] == nil {
				t.Errorf("service %s: neither image nor build", name)
			}
			continue
		}
		if strings.Contains(img, "@sha256:") {
			continue
		}
		tag := ""
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			tag = img[i+1:]
		}
		if tag == "" || tag == "latest" {
			t.Errorf("service %s: image %s is not pinned to a version tag", name, img)
		}
	}
}

func TestPortsBindLoopbackOnly(t *testing.T) {
	doc := loadCompose(t)
	seen := map[string]string{}
	for name, svc := range doc.Services {
		for _, p := range ports(t, name, svc) {
			if p.hostIP != "127.0.0.1" {
				t.Errorf("service %s: port %s is published on %q, not 127.0.0.1", name, p.containerPort, p.hostIP)
			}
			if p.hostPort == "" {
				t.Errorf("service %s: port %s gets a random host port", name, p.containerPort)
				continue
			}
			key := p.hostPort + "/" + p.protocol
			if other, dup := seen[key]; dup {
				t.Errorf("host port %s is published by both %s and %s", key, other, name)
			}
			seen[key] = name
		}
	}
}

func TestVolumes(t *testing.T) {
	doc := loadCompose(t)
	for name, svc := range doc.Services {
		for _, m := range mounts(svc) {
			switch m.typ {
			case "volume":
				if _, ok := doc.Volumes[m.source]; !ok {
					t.Errorf("service %s: volume %s is not declared under volumes:", name, m.source)
				}
			case "bind":
				if _, err := os.Stat(m.source); err != nil {
					t.Errorf("service %s: bind mount source: %v", name, err)
				}
			}
		}
	}
	ch := doc.Services["clickhouse"]
	if !slices.ContainsFunc(mounts(ch), func(m mount) bool { return m.target == "/var/lib/clickhouse" && m.typ == "volume" }) {
		t.Error("clickhouse: no named volume on /var/lib/clickhouse")
	}
	nofile := mapOf(mapOf(ch["ulimits"])["nofile"])
	if soft, _ := strconv.Atoi(str(nofile["soft"])); soft < 262144 {
		t.Errorf("clickhouse: ulimits nofile soft = %v, ClickHouse recommends 262144", nofile["soft"])
	}
}

// TestSluiceConfig checks the config file mounted into the `sluice run`
// services against the binary: every key a flag of `sluice run`, and the
// file plus each service's SLUICE_ environment accepted by the binary's own
// parsing.
func TestSluiceConfig(t *testing.T) {
	doc := loadCompose(t)
	local, global, ok := commandFlags(t, "run")
	if !ok {
		t.Fatal("sluice run --help did not list flags")
	}
	runners := sluiceRunServices(doc)
	if !slices.Contains(runners, "sluice-ingest") || !slices.Contains(runners, "sluice-worker") {
		t.Fatalf("services running `sluice run`: %v; want sluice-ingest and sluice-worker", runners)
	}
	wantRole := map[string]string{"sluice-ingest": "ingest", "sluice-worker": "work"}
	for _, name := range runners {
		svc := doc.Services[name]
		path, settings := sluiceConfig(t, name, svc)
		for key := range settings {
			switch {
			case key == "config":
				t.Errorf("%s: key config: a config file cannot name another", path)
			case global[key]:
				t.Errorf("%s: key %s is a global flag, applied before the config file is read: set %s in the environment instead", path, key, flagEnvName(key))
			case !local[key]:
				t.Errorf("%s: key %s is not a flag of `sluice run`", path, key)
			}
		}
		e := env(svc)
		for k := range e {
			if !strings.HasPrefix(k, "SLUICE_") {
				continue
			}
			known := false
			for f := range local {
				known = known || flagEnvName(f) == k
			}
			for f := range global {
				known = known || flagEnvName(f) == k
			}
			if !known {
				t.Errorf("service %s: %s matches no flag of `sluice run`: it would be ignored", name, k)
			}
		}
		if want := wantRole[name]; want != "" && e["SLUICE_ROLE"] != want {
			if v, _ := flagValue(list(svc["command"]), "role"); v != want {
				t.Errorf("service %s: role %q, want %q", name, e["SLUICE_ROLE"], want)
			}
		}

		// The real thing: the binary reads the environment and the file,
		// then stops at the invalid --role given on the command line (which
		// wins over SLUICE_ROLE) before connecting to anything.
		out, err := runSluice(t, e, "run", "--config", path, "--role", "compose-test-invalid")
		if err == nil {
			t.Errorf("service %s: sluice run with --role compose-test-invalid succeeded", name)
		} else if !strings.Contains(out, "--role") || strings.Contains(out, "config "+path) || strings.Contains(out, "SLUICE_") {
			t.Errorf("service %s: sluice run refuses its settings:\n%s", name, out)
		}
	}
}

// TestAddresses checks that every address a Sluice process is given names a
// service of the stack on the port it serves, and that the HTTP port is the
// same in the config, the healthchecks, the published port and loadgen.
func TestAddresses(t *testing.T) {
	doc := loadCompose(t)
	kafkaEnv := env(doc.Services["kafka"])
	advertised := listenerAddrs(t, kafkaEnv["KAFKA_ADVERTISED_LISTENERS"])

	for _, name := range sluiceRunServices(doc) {
		svc := doc.Services[name]
		path, settings := sluiceConfig(t, name, svc)
		e := env(svc)
		setting := func(flag string) string {
			if v, ok := e[flagEnvName(flag)]; ok {
				return v
			}
			switch x := settings[flag].(type) {
			case []any:
				parts := make([]string, len(x))
				for i, p := range x {
					parts[i] = str(p)
				}
				return strings.Join(parts, ",")
			default:
				return str(x)
			}
		}

		brokers := setting("kafka-brokers")
		if brokers == "" {
			t.Errorf("%s (%s): no kafka-brokers", path, name)
		}
		for _, b := range strings.Split(brokers, ",") {
			b = strings.TrimSpace(b)
			host, _ := splitHostPort(t, "kafka-brokers", b)
			if doc.Services[host] == nil {
				t.Errorf("%s (%s): kafka broker %s: no service %s", path, name, b, host)
			}
			if !slices.Contains(advertised, b) {
				t.Errorf("%s (%s): kafka broker %s is not among kafka's advertised listeners %v", path, name, b, advertised)
			}
		}

		if chAddr := setting("clickhouse-addr"); chAddr != "" {
			host, port := splitHostPort(t, "clickhouse-addr", chAddr)
			if doc.Services[host] == nil || !strings.Contains(str(doc.Services[host]["image"]), "clickhouse") {
				t.Errorf("%s (%s): clickhouse-addr %s does not name the ClickHouse service", path, name, chAddr)
			}
			if port != "9000" {
				t.Errorf("%s (%s): clickhouse-addr %s: Sluice speaks the native protocol, port 9000", path, name, chAddr)
			}
		} else if name == "sluice-worker" {
			t.Errorf("%s (%s): no clickhouse-addr", path, name)
		}

		if natsURL := setting("nats-url"); natsURL != "" {
			u, err := url.Parse(natsURL)
			if err != nil {
				t.Errorf("%s (%s): nats-url %q: %v", path, name, natsURL, err)
			} else if svcN := doc.Services[u.Hostname()]; svcN == nil || !strings.HasPrefix(str(svcN["image"]), "nats:") || u.Port() != "4222" {
				t.Errorf("%s (%s): nats-url %s does not name the NATS server on port 4222", path, name, natsURL)
			}
		}

		// The HTTP listener must be reachable from other containers, and
		// the healthcheck must probe it.
		host, port := splitHostPort(t, "http-addr", setting("http-addr"))
		if host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("%s (%s): http-addr %s is not reachable from outside the container", path, name, setting("http-addr"))
		}
		hc := strings.Join(list(mapOf(svc["healthcheck"])["test"]), " ")
		if !strings.Contains(hc, ":"+port+"/readyz") {
			t.Errorf("service %s: healthcheck %q does not probe /readyz on port %s", name, hc, port)
		}
		if name == "sluice-ingest" {
			checkCollectorPorts(t, doc, svc, port, setting)
			lg := list(doc.Services["loadgen"]["command"])
			if u, _ := flagValue(lg, "url"); u != "http://sluice-ingest:"+port {
				t.Errorf("loadgen --url %q, want http://sluice-ingest:%s", u, port)
			}
		}
	}

	// Every SLUICE_*ADDR / BROKERS / URL setting of the tool services too.
	for name, svc := range doc.Services {
		for k, v := range env(svc) {
			if !strings.HasPrefix(k, "SLUICE_") || !(strings.HasSuffix(k, "_ADDR") || strings.HasSuffix(k, "_BROKERS")) {
				continue
			}
			for _, a := range strings.Split(v, ",") {
				// 0.0.0.0 is a collector's listen address, not a service.
				if host, _ := splitHostPort(t, k, a); host != "" && host != "0.0.0.0" && doc.Services[host] == nil {
					t.Errorf("service %s: %s=%s: no service %s", name, k, v, host)
				}
			}
		}
	}
}

// checkCollectorPorts checks sluice-ingest's listeners: HTTP on httpPort,
// and each collector that has an address (syslog TCP and UDP, RELP)
// listening on every interface with its port published; the MQTT
// subscriber's broker is the mosquitto service.
func checkCollectorPorts(t *testing.T, doc composeDoc, svc map[string]any, httpPort string, setting func(string) string) {
	t.Helper()
	published := map[string]bool{}
	for _, p := range ports(t, "sluice-ingest", svc) {
		published[p.containerPort+"/"+p.protocol] = true
	}
	if !published[httpPort+"/tcp"] {
		t.Errorf("service sluice-ingest: HTTP port %s is not published", httpPort)
	}
	for flag, proto := range map[string]string{"syslog-tcp-addr": "tcp", "syslog-udp-addr": "udp", "relp-addr": "tcp"} {
		addr := setting(flag)
		if addr == "" {
			continue
		}
		host, port := splitHostPort(t, flag, addr)
		if host != "0.0.0.0" {
			t.Errorf("service sluice-ingest: %s %s is not reachable from outside the container", flag, addr)
		}
		if !published[port+"/"+proto] {
			t.Errorf("service sluice-ingest: %s %s: port %s/%s is not published", flag, addr, port, proto)
		}
	}
	if broker := setting("mqtt-broker"); broker != "" {
		u, err := url.Parse(broker)
		if err != nil {
			t.Errorf("mqtt-broker %q: %v", broker, err)
		} else if b := doc.Services[u.Hostname()]; b == nil || !strings.Contains(str(b["image"]), "mosquitto") || u.Port() != "1883" {
			t.Errorf("service sluice-ingest: mqtt-broker %s does not name the mosquitto service on port 1883", broker)
		}
		lg := list(doc.Services["loadgen-mqtt"]["command"])
		if b, _ := flagValue(lg, "mqtt-broker"); b != broker {
			t.Errorf("loadgen-mqtt --mqtt-broker %q, want the collector's %s", b, broker)
		}
	}
}

func splitHostPort(t *testing.T, what, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimSpace(addr))
	if err != nil {
		t.Errorf("%s %q: %v", what, addr, err)
	}
	return host, port
}

// listenerAddrs returns host:port of each NAME://host:port listener.
func listenerAddrs(t *testing.T, listeners string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(listeners, ",") {
		_, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
		if !ok {
			t.Errorf("listener %q: want NAME://host:port", l)
			continue
		}
		out = append(out, addr)
	}
	return out
}

func listenerNames(listeners string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(listeners, ",") {
		name, addr, _ := strings.Cut(strings.TrimSpace(l), "://")
		out[name] = addr
	}
	return out
}

// TestKafka checks the KRaft single-node settings of the apache/kafka image:
// the variables are turned into server.properties (KAFKA_A_B -> a.b), and
// without a complete set the broker does not start or rejects acks=all.
func TestKafka(t *testing.T) {
	doc := loadCompose(t)
	svc := doc.Services["kafka"]
	if !strings.HasPrefix(str(svc["image"]), "apache/kafka:") {
		t.Fatalf("kafka: image %s, want apache/kafka", svc["image"])
	}
	e := env(svc)
	for _, k := range []string{
		"CLUSTER_ID", "KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
		"KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_CONTROLLER_QUORUM_VOTERS",
		"KAFKA_INTER_BROKER_LISTENER_NAME", "KAFKA_LOG_DIRS",
	} {
		if e[k] == "" {
			t.Errorf("kafka: %s is not set", k)
		}
	}
	roles := strings.Split(e["KAFKA_PROCESS_ROLES"], ",")
	if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES %q: a single node must be broker and controller", e["KAFKA_PROCESS_ROLES"])
	}
	protocols := map[string]bool{}
	for _, p := range strings.Split(e["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		name, _, _ := strings.Cut(p, ":")
		protocols[name] = true
	}
	listeners := listenerNames(e["KAFKA_LISTENERS"])
	advertised := listenerNames(e["KAFKA_ADVERTISED_LISTENERS"])
	for name := range listeners {
		if !protocols[name] {
			t.Errorf("kafka: listener %s has no security protocol in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", name)
		}
	}
	ctrl := e["KAFKA_CONTROLLER_LISTENER_NAMES"]
	for name, addr := range advertised {
		if listeners[name] == "" {
			t.Errorf("kafka: advertised listener %s is not in KAFKA_LISTENERS", name)
		}
		if name == ctrl {
			t.Errorf("kafka: the controller listener %s must not be advertised", name)
		}
		_, aport := splitHostPort(t, "advertised listener", addr)
		_, lport := splitHostPort(t, "listener", listeners[name])
		// The host listener is reached through a published port: the host
		// side must be the advertised port, the container side the listener.
		for _, p := range ports(t, "kafka", svc) {
			if p.containerPort == lport && p.hostPort != aport {
				t.Errorf("kafka: listener %s on %s is published on host port %s but advertised on %s", name, lport, p.hostPort, aport)
			}
		}
	}
	if listeners[ctrl] == "" {
		t.Errorf("kafka: controller listener %q is not in KAFKA_LISTENERS", ctrl)
	}
	if ib := e["KAFKA_INTER_BROKER_LISTENER_NAME"]; advertised[ib] == "" {
		t.Errorf("kafka: inter-broker listener %q is not advertised", ib)
	}
	// 1@kafka:9093: this node, on the controller listener.
	for _, v := range strings.Split(e["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",") {
		id, addr, _ := strings.Cut(v, "@")
		host, port := splitHostPort(t, "quorum voter", addr)
		_, cport := splitHostPort(t, "controller listener", listeners[ctrl])
		if id != e["KAFKA_NODE_ID"] || (host != "kafka" && host != str(svc["hostname"])) || port != cport {
			t.Errorf("kafka: quorum voter %q is not node %s on the controller listener kafka:%s", v, e["KAFKA_NODE_ID"], cport)
		}
	}

	// One broker: no replication factor above 1, and min.insync.replicas
	// no higher than the replication factor of Sluice's topics, or produce
	// with acks=all fails with NOT_ENOUGH_REPLICAS.
	for _, k := range []string{"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"} {
		if e[k] != "1" {
			t.Errorf("kafka: %s = %q, want 1 on a single broker", k, e[k])
		}
	}
	if v := e["KAFKA_DEFAULT_REPLICATION_FACTOR"]; v != "" && v != "1" {
		t.Errorf("kafka: KAFKA_DEFAULT_REPLICATION_FACTOR = %s on a single broker", v)
	}
	minISR := 1
	if v := e["KAFKA_MIN_INSYNC_REPLICAS"]; v != "" {
		minISR, _ = strconv.Atoi(v)
	}
	for _, name := range sluiceRunServices(doc) {
		path, settings := sluiceConfig(t, name, doc.Services[name])
		rf := 1 // `sluice run` default
		if v, ok := settings["replication-factor"]; ok {
			rf, _ = strconv.Atoi(str(v))
		}
		if v, ok := env(doc.Services[name])["SLUICE_REPLICATION_FACTOR"]; ok {
			rf, _ = strconv.Atoi(v)
		}
		if rf != 1 {
			t.Errorf("%s (%s): replication-factor %d on a single broker", path, name, rf)
		}
		if minISR > rf {
			t.Errorf("kafka: min.insync.replicas %d > replication factor %d: acks=all would fail", minISR, rf)
		}
	}
	hc := strings.Join(list(mapOf(svc["healthcheck"])["test"]), " ")
	if !strings.Contains(hc, "--bootstrap-server") {
		t.Errorf("kafka: healthcheck %q does not ask the broker", hc)
	}
}

// TestNATS checks JetStream is on and that the stream nats-init creates
// captures the subjects Sluice publishes on (<topic-prefix><stream>.<key>).
func TestNATS(t *testing.T) {
	doc := loadCompose(t)
	srv := list(doc.Services["nats"]["command"])
	if !slices.Contains(srv, "-js") && !slices.Contains(srv, "--jetstream") {
		t.Errorf("nats: command %v does not enable JetStream", srv)
	}
	prefix := "sluice."
	for _, name := range sluiceRunServices(doc) {
		_, settings := sluiceConfig(t, name, doc.Services[name])
		if v, ok := settings["topic-prefix"]; ok {
			prefix = str(v)
		}
	}
	script := strings.Join(list(doc.Services["nats-init"]["command"]), " ")
	if !strings.Contains(script, "--subjects '"+prefix+">'") {
		t.Errorf("nats-init does not create a stream on %s> (Sluice's subjects): %s", prefix, script)
	}
	if !strings.Contains(script, "--defaults") {
		t.Error("nats-init: nats stream add without --defaults prompts for what is not given")
	}
	if u := env(doc.Services["nats-init"])["NATS_URL"]; u != "nats://nats:4222" {
		t.Errorf("nats-init: NATS_URL %q", u)
	}
}

// TestLoadgenAndTools checks the flags of the sluice commands the other
// services run, with the binary's own flag parsing.
func TestLoadgenAndTools(t *testing.T) {
	doc := loadCompose(t)
	lg := list(doc.Services["loadgen"]["command"])
	if len(lg) == 0 || lg[0] != "loadgen" {
		t.Fatalf("loadgen: command %v", lg)
	}
	// --help after the flags: cobra parses them all (unknown flags, bad
	// values fail) and then prints the help instead of running.
	if out, err := runSluice(t, nil, append(slices.Clone(lg), "--help")...); err != nil {
		t.Errorf("sluice %s: %v\n%s", strings.Join(lg, " "), err, out)
	}

	svc := doc.Services["verify"]
	if svc == nil {
		return
	}
	if cmd := list(svc["command"]); len(cmd) == 0 || cmd[0] != "verify" {
		t.Errorf("verify: command %v", cmd)
	}
	local, global, ok := commandFlags(t, "verify")
	if !ok {
		t.Log("this sluice has no verify command yet: the verify service's settings are not checked")
		return
	}
	for k := range env(svc) {
		known := false
		for f := range local {
			known = known || flagEnvName(f) == k
		}
		for f := range global {
			known = known || flagEnvName(f) == k
		}
		if strings.HasPrefix(k, "SLUICE_") && !known {
			t.Errorf("verify: %s matches no flag of `sluice verify`: it would be ignored", k)
		}
	}
}

// TestDockerfile checks the image build against the module: the Go version of
// the builder, the package it builds, the entrypoint, a non-root user, and a
// build context that keeps what the build needs.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)(?:\.(\d+))?\s*$`).FindStringSubmatch(string(gomod))
	if m == nil {
		t.Fatal("go.mod: no go line")
	}
	modMajor, modMinor, modPatch := atoi(m[1]), atoi(m[2]), atoi(m[3])

	goVersion := ""
	if a := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(df); a != nil {
		goVersion = a[1]
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?golang:(\S+)`).FindStringSubmatch(df)
	if from == nil {
		t.Fatal("Dockerfile: no golang builder stage")
	}
	tag := strings.ReplaceAll(from[1], "${GO_VERSION}", goVersion)
	v := regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`).FindStringSubmatch(tag)
	if v == nil {
		t.Fatalf("Dockerfile: golang:%s: not a version tag", tag)
	}
	// The golang images set GOTOOLCHAIN=local: an older Go refuses go.mod.
	if atoi(v[1]) != modMajor || atoi(v[2]) != modMinor {
		t.Errorf("Dockerfile builds with golang:%s, go.mod says go %d.%d", tag, modMajor, modMinor)
	} else if v[3] != "" && atoi(v[3]) < modPatch {
		t.Errorf("Dockerfile builds with golang:%s, go.mod needs go %d.%d.%d", tag, modMajor, modMinor, modPatch)
	}

	build := regexp.MustCompile(`go build [^\n]*`).FindString(df)
	for _, want := range []string{"-trimpath", "./cmd/sluice"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile: go build line %q lacks %s", build, want)
		}
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("Dockerfile: CGO_ENABLED=0 missing: the binary would not be static")
	}
	if _, err := os.Stat("../cmd/sluice"); err != nil {
		t.Errorf("Dockerfile builds ./cmd/sluice: %v", err)
	}
	if !strings.Contains(df, `ENTRYPOINT ["sluice"]`) {
		t.Error(`Dockerfile: want ENTRYPOINT ["sluice"]: the compose services give sluice's arguments only`)
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "root") || strings.HasPrefix(users[len(users)-1][1], "0") {
		t.Error("Dockerfile: the runtime stage does not switch to a non-root user")
	}
	if !strings.Contains(df, "--mount=type=cache,target=/go/pkg/mod") {
		t.Error("Dockerfile: no module cache mount")
	}
	// The healthchecks of the compose stack run wget inside the image.
	if !regexp.MustCompile(`(?m)^FROM\s+(alpine|busybox)`).MatchString(df) {
		t.Error("Dockerfile: the runtime image is not Alpine: the compose healthchecks need its wget")
	}

	ig, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ig), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimPrefix(l, "/"))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			if strings.HasPrefix(p, "!") {
				continue
			}
			for q := path; q != "." && q != "/"; q = filepath.Dir(q) {
				if ok, _ := filepath.Match(p, q); ok {
					return true
				}
			}
		}
		return false
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd/sluice/main.go", "schemas/schema.go", "pipeline"} {
		if ignored(need) {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
	for _, out := range []string{".git", ".local", "bin"} {
		if !ignored(out) {
			t.Errorf(".dockerignore does not exclude %s", out)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestStaticBinary checks that the Dockerfile's build flags give a static
// binary, which runs on any base image (Alpine's musl included). Only when
// this test built the binary itself.
func TestStaticBinary(t *testing.T) {
	path := sluiceBin(t)
	if !binBuilt {
		t.Skip("SLUICE_BIN is set: that binary was not built with the Dockerfile's flags")
	}
	if runtime.GOOS != "linux" {
		t.Skip("ELF check on Linux only")
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader (PT_INTERP): not static")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}
