package tui

import (
	"charm.land/lipgloss/v2"

	"github.com/hatui/hatui/protocol"
)

// styles holds every style the screen uses. Colours are the terminal's own
// 16 ANSI colours so that the operator's theme decides the shades. Nothing
// is ever told by colour alone: every coloured word is a word first, so a
// NO_COLOR terminal, a colour-blind operator and a screenshot in a ticket
// all read the same thing.
type styles struct {
	noColor bool

	title, titleFocus   lipgloss.Style
	header              lipgloss.Style
	dim                 lipgloss.Style
	bold                lipgloss.Style
	cursor              lipgloss.Style // the selected row
	warn                lipgloss.Style
	loud                lipgloss.Style // quorum risks, pending geo failover: must not be missed
	ok                  lipgloss.Style
	bad                 lipgloss.Style
	info                lipgloss.Style
	button, buttonFocus lipgloss.Style
	dialog              lipgloss.Style
	key                 lipgloss.Style

	state map[protocol.NodeState]lipgloss.Style
	sev   map[protocol.Severity]lipgloss.Style
}

func newStyles(noColor bool) *styles {
	s := &styles{noColor: noColor}
	plain := lipgloss.NewStyle()
	fg := func(c string) lipgloss.Style {
		if noColor {
			return plain
		}
		return plain.Foreground(lipgloss.Color(c))
	}
	s.title = fg("8")
	s.titleFocus = fg("6").Bold(true)
	s.header = plain.Bold(true)
	s.dim = fg("8")
	s.bold = plain.Bold(true)
	// Reverse video marks the cursor row even without colour; the row also
	// carries a ">" so it survives a plain-text copy.
	s.cursor = plain.Reverse(true)
	s.warn = fg("3").Bold(true)
	s.loud = fg("1").Bold(true).Reverse(true)
	if noColor {
		s.loud = plain.Bold(true).Reverse(true)
	}
	s.ok = fg("2")
	s.bad = fg("1").Bold(true)
	s.info = fg("4")
	s.button = plain
	s.buttonFocus = plain.Reverse(true).Bold(true)
	s.dialog = fg("6")
	s.key = fg("6").Bold(true)

	s.state = map[protocol.NodeState]lipgloss.Style{
		protocol.StateOnline:      fg("2"),
		protocol.StateStandby:     fg("3"),
		protocol.StateMaintenance: fg("4"),
		protocol.StateOffline:     fg("1").Bold(true),
		protocol.StateUnclean:     fg("5").Bold(true).Reverse(true),
	}
	if noColor {
		s.state[protocol.StateOffline] = plain.Bold(true)
		s.state[protocol.StateUnclean] = plain.Bold(true).Reverse(true)
	}
	s.sev = map[protocol.Severity]lipgloss.Style{
		protocol.SevInfo:     s.dim,
		protocol.SevWarning:  s.warn,
		protocol.SevCritical: s.bad,
	}
	return s
}

// nodeState renders crm_mon's word for a node in its colour.
func (s *styles) nodeState(st protocol.NodeState) string {
	if st == "" {
		st = "unknown"
	}
	if style, ok := s.state[st]; ok {
		return style.Render(string(st))
	}
	return s.warn.Render(string(st))
}

// sevWord is the word for a severity; upper case is trouble, as in crm_mon.
func sevWord(sev protocol.Severity) string {
	switch sev {
	case protocol.SevCritical:
		return "CRIT"
	case protocol.SevWarning:
		return "WARN"
	case protocol.SevInfo, "":
		return "info"
	}
	return string(sev)
}

// severity renders an event's severity word in its colour.
func (s *styles) severity(sev protocol.Severity) string {
	if style, ok := s.sev[sev]; ok {
		return style.Render(sevWord(sev))
	}
	return sevWord(sev)
}
