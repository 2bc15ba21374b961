package tui

import (
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

type promptKind int

const (
	promptFilter promptKind = iota
	promptCommand
)

// prompt is the one-line input on the status line: `/` filter or `:`
// command.
type prompt struct {
	kind promptKind
	ti   textinput.Model
	keys struct{ enter, complete, cancel act }
}

func newPrompt(st *styles, kind promptKind, value string) *prompt {
	p := &prompt{kind: kind, ti: textinput.New()}
	p.ti.SetStyles(inputStyles(st))
	p.ti.CharLimit = 512
	p.keys.cancel = newAct([]string{"esc"}, "esc", "cancel")
	switch kind {
	case promptFilter:
		p.ti.Prompt = "/"
		p.ti.Placeholder = "node, site or cluster name"
		p.keys.enter = newAct([]string{"enter"}, "enter", "keep filter")
		p.keys.cancel.SetHelp("esc", "clear filter")
	case promptCommand:
		p.ti.Prompt = ":"
		p.ti.Placeholder = "verb, e.g. standby NODE · help lists them"
		p.ti.ShowSuggestions = true
		p.keys.enter = newAct([]string{"enter"}, "enter", "run")
		p.keys.complete = newAct([]string{"tab"}, "tab", "complete")
	}
	p.ti.SetValue(value)
	p.ti.CursorEnd()
	return p
}

func (p *prompt) focus() tea.Cmd { return p.ti.Focus() }

// Update passes a key or paste to the text input.
func (p *prompt) Update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	p.ti, cmd = p.ti.Update(msg)
	return cmd
}

// ShortHelp is the prompt's footer help.
func (p *prompt) ShortHelp() []key.Binding {
	if p.kind == promptCommand {
		return bindings(&p.keys.enter, &p.keys.complete, &p.keys.cancel)
	}
	return bindings(&p.keys.enter, &p.keys.cancel)
}

// FullHelp lists every binding of the prompt.
func (p *prompt) FullHelp() [][]key.Binding { return [][]key.Binding{p.ShortHelp()} }

// View renders the input line w cells wide.
func (p *prompt) View(w int) string {
	p.ti.SetWidth(max(w-2, 1))
	return p.ti.View()
}
