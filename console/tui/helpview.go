package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// helpView is the `?` screen: the focused pane's bindings and the global
// ones, each with what it does here and, when disabled, why. Groups whose
// entries are all short (movement keys) are run together on one line so
// that the whole help fits 80×24.
func (m *Model) helpView(w, h int) []string {
	st := m.st
	names := []string{"Nodes", "Resources", "Events"}
	lines := []string{st.rule("Help · "+names[m.focus]+" pane · esc closes", w, true)}
	if m.opts.ReadOnly {
		lines = append(lines, st.warn.Render("READ-ONLY: every action is removed (hatui was started with --read-only)"))
	}
	g := &m.keys
	groups := m.focused().helpGroups()
	groups = append(groups,
		helpGroup{"Geo", []*act{&g.geoConfirm, &g.geoAbort}},
		helpGroup{"Anywhere", []*act{&g.filter, &g.command, &g.next, &g.prev, &g.help, &g.back, &g.quit}},
	)
	for _, grp := range groups {
		lines = append(lines, m.helpGroup(grp, w)...)
	}
	lines = append(lines, st.dim.Render("Verbs for : (and hatui --exec): type ':help' or ':help VERB'."))
	return block(lines, w, h)
}

func (m *Model) helpGroup(g helpGroup, w int) []string {
	st := m.st
	var acts []*act
	short := true
	for _, a := range g.acts {
		if len(a.Keys()) == 0 {
			continue // unbound: does not exist in this mode
		}
		acts = append(acts, a)
		if len(a.Help().Desc) > 14 || a.why != "" {
			short = false
		}
	}
	if len(acts) == 0 {
		return nil
	}
	title := st.header.Render(g.title)
	if short {
		// Run together, wrapped at the width rather than cut off.
		var out []string
		line := title
		sep := "  "
		for _, a := range acts {
			part := st.key.Render(a.Help().Key) + " " + a.Help().Desc
			if ansi.StringWidth(line)+len(sep)+ansi.StringWidth(part) > w && line != title {
				out = append(out, line)
				line, sep = strings.Repeat(" ", ansi.StringWidth(title)), "  "
			}
			line += sep + part
			sep = st.dim.Render(" · ")
		}
		return append(out, line)
	}
	out := []string{title}
	kw := 0
	for _, a := range acts {
		kw = max(kw, ansi.StringWidth(a.Help().Key))
	}
	for _, a := range acts {
		k := fmt.Sprintf("  %-*s  ", kw, a.Help().Key)
		line := st.key.Render(k) + a.Help().Desc
		if a.why != "" {
			line = st.dim.Render(k+a.Help().Desc) + st.warn.Render(" — disabled: "+a.why)
		}
		out = append(out, clip(line, w))
	}
	return out
}
