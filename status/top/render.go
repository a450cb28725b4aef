package top

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"

	"github.com/sluicehq/sluice/status"
)

var (
	titleStyle   = lipgloss.NewStyle().Bold(true)
	sectionStyle = lipgloss.NewStyle().Bold(true).Underline(true)
	mutedStyle   = lipgloss.NewStyle().Faint(true)
	headerStyle  = lipgloss.NewStyle().Bold(true).Padding(0, 1)
	cellStyle    = lipgloss.NewStyle().Padding(0, 1)
	stateStyles  = map[string]lipgloss.Style{
		"up":      lipgloss.NewStyle().Foreground(lipgloss.Color("2")),
		"failing": lipgloss.NewStyle().Foreground(lipgloss.Color("3")).Bold(true),
		"down":    lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		"alarm":   lipgloss.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
	}
)

// stageTitles are the column titles of the stages, as on the status page.
var stageTitles = map[status.Stage]string{
	status.StageReceived: "received", status.StageRejected: "rejected", status.StageRefused: "refused",
	status.StageInKafka: "in kafka", status.StageStored: "stored", status.StagePublished: "published",
	status.StageDeadLettered: "dead-lettered",
}

// Render draws a view taken at as text for a terminal of width columns
// and height lines (0: unknown, draw everything). The partitions come last
// and are cut short to fit, saying how many were left out; lines wider
// than the terminal are cut rather than wrapped, which would scramble the
// tables.
func Render(v status.View, at time.Time, width, height int) string {
	down := 0
	for _, p := range v.Processes {
		if !p.Up {
			down++
		}
	}
	head := titleStyle.Render("sluice top") + mutedStyle.Render(fmt.Sprintf("  %d process(es), %d down · %s · q quits",
		len(v.Processes), down, at.Format("15:04:05")))
	parts := []string{
		head,
		section("Processes", processTable(v.Processes)),
		section("Streams (events/s)", streamTable(v)),
		section("Sinks", sinkTable(v.Sinks)),
	}
	used := lipgloss.Height(strings.Join(parts, "\n"))
	parts = append(parts, section("Partitions", partitionTable(v.Partitions, height-used-4)))
	screen := strings.Join(parts, "\n")
	if width > 0 {
		screen = lipgloss.NewStyle().MaxWidth(width).Render(screen)
	}
	return screen + "\n"
}

func section(title, body string) string {
	return "\n" + sectionStyle.Render(title) + "\n" + body
}

// newTable is a table without outer borders: a rule under the header is
// all the frame a terminal needs. style colours a body cell, or not.
func newTable(headers []string, rows [][]string, rightFrom int, style func(row, col int) (lipgloss.Style, bool)) string {
	t := table.New().Border(lipgloss.NormalBorder()).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).BorderColumn(false).
		BorderStyle(mutedStyle).
		Headers(headers...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			s := cellStyle
			if row == table.HeaderRow {
				s = headerStyle
			} else if style != nil {
				if st, ok := style(row, col); ok {
					s = st.Padding(0, 1)
				}
			}
			if col >= rightFrom {
				s = s.Align(lipgloss.Right)
			}
			return s
		})
	return t.Render()
}

func processTable(ps []status.Process) string {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		if !p.Up {
			rows = append(rows, []string{p.URL, "down", "", "", "", p.Err})
			continue
		}
		rows = append(rows, []string{p.URL, "up", p.Role, duration(p.UptimeSeconds), memory(p.Memory), ""})
	}
	return newTable([]string{"url", "state", "role", "uptime", "memory (RSS / limit)", ""}, rows, 99, func(row, col int) (lipgloss.Style, bool) {
		s, ok := stateStyles[rows[row][1]]
		return s, ok && col == 1
	})
}

func streamTable(v status.View) string {
	headers := []string{"stream"}
	for _, s := range v.Stages {
		headers = append(headers, stageTitles[s])
	}
	rows := make([][]string, 0, len(v.Streams))
	for _, st := range v.Streams {
		row := []string{st.Name}
		for _, s := range v.Stages {
			row = append(row, rate(st.Stages[s].Rate))
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return mutedStyle.Render("  none")
	}
	return newTable(headers, rows, 1, nil)
}

func sinkTable(sinks []status.Sink) string {
	rows := make([][]string, 0, len(sinks))
	for _, s := range sinks {
		rows = append(rows, []string{s.Name, string(s.State), rate(s.Rate), rate(s.ErrorRate), strings.Join(s.FailingStreams, ", ")})
	}
	if len(rows) == 0 {
		return mutedStyle.Render("  none")
	}
	return newTable([]string{"sink", "state", "events/s", "errors/s", "failing streams"}, rows, 2, func(row, col int) (lipgloss.Style, bool) {
		s, ok := stateStyles[rows[row][1]]
		return s, ok && col == 1
	})
}

// partitionTable draws at most room rows (all when room is not positive
// because the height is unknown; at least a few otherwise).
func partitionTable(ps []status.Partition, room int) string {
	if len(ps) == 0 {
		return mutedStyle.Render("  none watched yet")
	}
	sinkSet := map[string]bool{}
	for _, p := range ps {
		for s := range p.Lag {
			sinkSet[s] = true
		}
	}
	sinks := slices.Sorted(maps.Keys(sinkSet))
	headers := []string{"stream", "partition", "backlog age"}
	for _, s := range sinks {
		headers = append(headers, "lag "+s)
	}
	shown, more := ps, 0
	if room > 0 && len(ps) > room {
		room = max(room-1, 3)
		shown, more = ps[:min(room, len(ps))], len(ps)-min(room, len(ps))
	}
	rows := make([][]string, 0, len(shown))
	for _, p := range shown {
		age := duration(p.BacklogAgeSeconds)
		if p.Alarm {
			age += " near retention!"
		}
		row := []string{p.Stream, strconv.Itoa(p.Partition), age}
		for _, s := range sinks {
			if lag, ok := p.Lag[s]; ok {
				row = append(row, count(lag))
			} else {
				row = append(row, "–")
			}
		}
		rows = append(rows, row)
	}
	out := newTable(headers, rows, 1, func(row, col int) (lipgloss.Style, bool) {
		return stateStyles["alarm"], col == 2 && shown[row].Alarm
	})
	if more > 0 {
		out += "\n" + mutedStyle.Render(fmt.Sprintf("  … and %d more partitions (a taller terminal shows them)", more))
	}
	return out
}

// rate formats events per second: decimals while they matter.
func rate(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return count(v)
}

// count formats a whole number with thousands separators.
func count(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func duration(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

func memory(m status.Memory) string {
	mib := func(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 0, 64) + " MiB" }
	if m.LimitBytes <= 0 {
		return mib(m.ResidentBytes) + " (no limit)"
	}
	return fmt.Sprintf("%s / %s (%.0f%%)", mib(m.ResidentBytes), mib(m.LimitBytes), 100*m.ResidentBytes/m.LimitBytes)
}
