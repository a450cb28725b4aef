package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/sinks/clickhouse"
)

// role is one `sluice run --role NAME` process. Its output goes to a log
// file, never to the bench's own stdout or stderr, so that a role that
// outlives the bench holds nothing of the caller's open.
type role struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// startRole starts the role on a free loopback port.
func startRole(ctx context.Context, bin, name, dir string, args []string) (*role, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	logf, err := os.Create(logPath(dir, name))
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", name, err)
	}
	all := append([]string{"run", "--role", name, "--http-addr", addr, "--group-id", "sluice-bench"}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A bench killed before it could stop its roles takes them along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	r := &role{name: name, url: "http://" + addr, cmd: cmd, done: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

func (r *role) pid() int { return r.cmd.Process.Pid }

// waitReady waits until the role's /readyz answers 200.
func (r *role) waitReady(ctx context.Context, client *http.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.done:
			return fmt.Errorf("bench: the %s role exited at start-up; see %s", r.name, r.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the %s role is not ready after %v; see %s", r.name, limit, r.log.Name())
		}
	}
}

// stop asks the role to shut down (SIGTERM) and kills it after grace.
func (r *role) stop(grace time.Duration) {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(grace):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.log.Close()
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// dropDatabase drops the benchmark's database. 18.16 can take most of a
// minute over it while merges of its tables are being cancelled.
func dropDatabase(addr, db string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, _, err := clickhouse.Dial(ctx, clickhouse.Options{Addr: addr, Database: "default"})
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+clickhouse.Quote(db))
}
