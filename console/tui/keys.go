package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// act is a key binding that may be disabled for a reason the operator is
// told: in help, and when the key is pressed anyway. A disabled key never
// silently does nothing.
type act struct {
	key.Binding
	why   string // "" when enabled
	short string // the footer's description; the full one names the target
}

func newAct(keys []string, helpKey, desc string) act {
	return act{Binding: key.NewBinding(key.WithKeys(keys...), key.WithHelp(helpKey, desc)), short: desc}
}

// brief returns the binding with its short description, for the footer.
func (a *act) brief() key.Binding {
	b := a.Binding
	b.SetHelp(b.Help().Key, a.short)
	return b
}

// set updates the description and the reason the action is disabled.
func (a *act) set(desc, why string) {
	a.why = why
	a.SetEnabled(why == "")
	a.SetHelp(a.Help().Key, desc)
}

// pressed reports whether k is one of the binding's keys, enabled or not.
func pressed(k tea.KeyPressMsg, b key.Binding) bool {
	s := k.String()
	for _, v := range b.Keys() {
		if v == s {
			return true
		}
	}
	return false
}

// helpGroup is a titled set of bindings for the help screen.
type helpGroup struct {
	title string
	acts  []*act
}

// bindings flattens acts to key.Bindings for help.KeyMap.
func bindings(acts ...*act) []key.Binding {
	out := make([]key.Binding, 0, len(acts))
	for _, a := range acts {
		out = append(out, a.Binding)
	}
	return out
}

// briefs flattens acts to key.Bindings with their short descriptions.
func briefs(acts ...*act) []key.Binding {
	out := make([]key.Binding, 0, len(acts))
	for _, a := range acts {
		out = append(out, a.brief())
	}
	return out
}

// navKeys move a cursor or a scroll position; every pane has them.
type navKeys struct {
	up, down, pageUp, pageDown, first, last act
}

func newNavKeys(lastDesc string) navKeys {
	return navKeys{
		up:       newAct([]string{"up", "k"}, "↑/k", "up"),
		down:     newAct([]string{"down", "j"}, "↓/j", "down"),
		pageUp:   newAct([]string{"pgup", "ctrl+b"}, "pgup", "page up"),
		pageDown: newAct([]string{"pgdown", "ctrl+f"}, "pgdn", "page down"),
		first:    newAct([]string{"home", "g"}, "home/g", "first"),
		last:     newAct([]string{"end", "G"}, "end/G", lastDesc),
	}
}

func (n *navKeys) all() []*act {
	return []*act{&n.up, &n.down, &n.pageUp, &n.pageDown, &n.first, &n.last}
}

// move applies a navigation key to a position in [0, n) with a page of
// size page, reporting whether k was a navigation key.
func (n *navKeys) move(k tea.KeyPressMsg, pos, count, page int) (int, bool) {
	page = max(page, 1)
	switch {
	case pressed(k, n.up.Binding):
		pos--
	case pressed(k, n.down.Binding):
		pos++
	case pressed(k, n.pageUp.Binding):
		pos -= page
	case pressed(k, n.pageDown.Binding):
		pos += page
	case pressed(k, n.first.Binding):
		pos = 0
	case pressed(k, n.last.Binding):
		pos = count - 1
	default:
		return pos, false
	}
	return max(0, min(pos, count-1)), true
}

// globalKeys work in every pane.
type globalKeys struct {
	help, filter, command, next, prev, back, quit act
	geoConfirm, geoAbort                          act
}

func newGlobalKeys() globalKeys {
	return globalKeys{
		help:       newAct([]string{"?"}, "?", "help"),
		filter:     newAct([]string{"/"}, "/", "filter"),
		command:    newAct([]string{":"}, ":", "command"),
		next:       newAct([]string{"tab"}, "tab", "next pane"),
		prev:       newAct([]string{"shift+tab"}, "shift+tab", "previous pane"),
		back:       newAct([]string{"esc"}, "esc", "back"),
		quit:       newAct([]string{"q", "ctrl+c"}, "q", "quit"),
		geoConfirm: newAct([]string{"c"}, "c", "confirm geo"),
		geoAbort:   newAct([]string{"a"}, "a", "abort geo"),
	}
}
