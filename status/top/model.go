package top

import (
	"context"
	"net/http"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/sluicehq/sluice/status"
)

// Model is the state of the `sluice top` screen: the processes it polls
// and the merged view of their last answers. It is a bubbletea model.
type Model struct {
	ctx      context.Context
	urls     []string
	client   *http.Client
	interval time.Duration

	view      status.View
	fetchedAt time.Time
	width     int
	height    int
}

// New returns a Model polling the base URLs every interval; a poll stops
// waiting for a process after timeout, and ctx's end stops polls in flight.
func New(ctx context.Context, urls []string, interval, timeout time.Duration) Model {
	return Model{ctx: ctx, urls: urls, client: &http.Client{Timeout: timeout}, interval: interval}
}

// fetchedMsg carries the answers of one poll.
type fetchedMsg struct {
	sources []status.Source
	at      time.Time
}

// tickMsg says it is time for the next poll.
type tickMsg struct{}

// Init starts the first poll.
func (m Model) Init() tea.Cmd { return m.poll() }

// poll asks every process at once, off the UI's goroutine.
func (m Model) poll() tea.Cmd {
	return func() tea.Msg {
		return fetchedMsg{sources: Fetch(m.ctx, m.client, m.urls), at: time.Now()}
	}
}

// Update handles keys (q, Esc or Ctrl-C quit), the terminal's size, and
// the answers of a poll, after which the next poll waits an interval.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "esc", "ctrl+c":
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case fetchedMsg:
		m.view, m.fetchedAt = status.Merge(msg.sources), msg.at
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.poll()
	}
	return m, nil
}

// View draws the screen.
func (m Model) View() string {
	if m.fetchedAt.IsZero() {
		return "sluice top: asking " + strings.Join(m.urls, ", ") + " …\n"
	}
	return Render(m.view, m.fetchedAt, m.width, m.height)
}
