// Package top is the view model of `sluice top`: it polls the
// /api/status of one or more Sluice processes, merges their answers with
// status.Merge and draws them as tables in a terminal (bubbletea and
// lipgloss). A process that does not answer shows as down; the view goes
// on.
package top

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"

	"github.com/sluicehq/sluice/status"
)

// NormalizeURL turns what an operator types (host:port, or a URL with or
// without a trailing slash) into the base URL of a Sluice process.
func NormalizeURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("url %q: want http://host:port", raw)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u.String(), nil
}

// Fetch asks every base URL for its status at once and returns their
// answers in the order of urls; one that fails carries the reason.
func Fetch(ctx context.Context, client *http.Client, urls []string) []status.Source {
	out := make([]status.Source, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			st, err := fetchOne(ctx, client, u)
			out[i] = status.Source{URL: u, Status: st, Err: err}
		})
	}
	wg.Wait()
	return out
}

func fetchOne(ctx context.Context, client *http.Client, base string) (*status.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+status.PathAPI, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, brief(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	var st status.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("not a Sluice status: %w", err)
	}
	return &st, nil
}

// brief shortens a client error to what an operator acts on: the URL is
// on the same line of the view already.
func brief(err error) error {
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &timeout) && timeout.Timeout():
		return errors.New("no answer in time")
	}
	var ne *net.OpError
	if errors.As(err, &ne) {
		return ne.Err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
