package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/hatui/hatui/console/verb"
)

// dialog asks before a dangerous command is sent. The confirm form starts
// on Cancel, and Enter on Cancel only closes it: reaching Confirm takes a
// deliberate move, so a stray Enter from a key-repeat or a mistyped
// sequence never fences a node. The typed form, for irreversible
// commands, wants the target's name typed exactly.
type dialog struct {
	st    *styles
	cmd   verb.Command
	facts string // the target's state now
	typed bool
	// onConfirm is true when the focus is on Confirm (confirm form only).
	onConfirm bool
	input     textinput.Model
	err       string
	keys      dialogKeys
}

type dialogKeys struct {
	left, right, toggle, enter, cancel act
}

// dialogResult is what a key did to the dialog.
type dialogResult int

const (
	dialogOpen dialogResult = iota
	dialogCancelled
	dialogConfirmed
)

func newDialog(st *styles, cmd verb.Command, facts string) *dialog {
	d := &dialog{st: st, cmd: cmd, typed: cmd.Irreversible(), facts: facts}
	d.keys = dialogKeys{
		left:   newAct([]string{"left", "h"}, "←/h", "cancel button"),
		right:  newAct([]string{"right", "l"}, "→/l", "confirm button"),
		toggle: newAct([]string{"tab", "shift+tab"}, "tab", "other button"),
		enter:  newAct([]string{"enter"}, "enter", "press button"),
		cancel: newAct([]string{"esc"}, "esc", "cancel"),
	}
	if d.typed {
		d.keys.enter.SetHelp("enter", "confirm when the name matches")
		d.input = textinput.New()
		d.input.Prompt = "> "
		d.input.CharLimit = 253
		d.input.SetStyles(inputStyles(st))
		d.input.SetWidth(30)
		d.input.Focus()
	}
	return d
}

// focus gives the typed form's input the cursor.
func (d *dialog) focus() tea.Cmd {
	if d.typed {
		return d.input.Focus()
	}
	return nil
}

// Update handles a key, reporting whether the dialog is still open, was
// cancelled, or confirmed.
func (d *dialog) Update(msg tea.Msg) (dialogResult, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case pressed(k, d.keys.cancel.Binding):
			return dialogCancelled, nil
		case pressed(k, d.keys.enter.Binding):
			return d.enter(), nil
		}
		if !d.typed {
			switch {
			case pressed(k, d.keys.left.Binding):
				d.onConfirm = false
			case pressed(k, d.keys.right.Binding):
				d.onConfirm = true
			case pressed(k, d.keys.toggle.Binding):
				d.onConfirm = !d.onConfirm
			}
			return dialogOpen, nil
		}
	}
	if d.typed {
		var cmd tea.Cmd
		d.input, cmd = d.input.Update(msg)
		d.err = ""
		return dialogOpen, cmd
	}
	return dialogOpen, nil
}

func (d *dialog) enter() dialogResult {
	if !d.typed {
		if d.onConfirm {
			return dialogConfirmed
		}
		return dialogCancelled
	}
	got := strings.TrimSpace(d.input.Value())
	if got == d.cmd.Target() {
		return dialogConfirmed
	}
	if got == "" {
		d.err = "type " + d.cmd.Target() + " first, or esc to cancel"
	} else {
		d.err = "that is not " + d.cmd.Target() + ": type the name exactly"
	}
	return dialogOpen
}

// ShortHelp is the dialog's footer help.
func (d *dialog) ShortHelp() []key.Binding {
	if d.typed {
		return bindings(&d.keys.enter, &d.keys.cancel)
	}
	return bindings(&d.keys.left, &d.keys.right, &d.keys.enter, &d.keys.cancel)
}

// FullHelp lists every binding of the dialog.
func (d *dialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }

// View renders the dialog box, at most maxW cells wide.
func (d *dialog) View(maxW int) string {
	st := d.st
	w := min(max(maxW-4, 20), 60) // inner width
	var body []string
	title := d.cmd.Action.String()
	if d.cmd.Action.DryRun {
		title += " --dry-run"
	}
	if d.typed {
		// Only the verb is shouted: names stay as the operator must type them.
		v := strings.ToUpper(d.cmd.Verb.Name)
		title = v + strings.TrimPrefix(title, d.cmd.Verb.Name)
		body = append(body, st.loud.Render(title)+" "+st.bad.Render("— irreversible"))
	} else {
		body = append(body, st.warn.Render(title))
	}
	body = append(body, "")
	body = append(body, wrap(d.cmd.Verb.Help+".", w)...)
	if d.facts != "" {
		body = append(body, wrap(d.facts, w)...)
	}
	body = append(body, "")
	if d.typed {
		body = append(body, "Type "+st.bold.Render(d.cmd.Target())+" to confirm:")
		body = append(body, d.input.View())
		if d.err != "" {
			body = append(body, st.bad.Render(d.err))
		}
		body = append(body, "", st.dim.Render("enter confirm · esc cancel"))
	} else {
		cancel, confirm := st.button.Render("  Cancel  "), st.button.Render("  Confirm  ")
		if d.onConfirm {
			confirm = st.buttonFocus.Render("[ Confirm ]")
		} else {
			cancel = st.buttonFocus.Render("[ Cancel ]")
		}
		body = append(body, "   "+cancel+"    "+confirm)
		body = append(body, "", st.dim.Render("←/→ choose · enter press · esc cancel"))
	}
	return box(st, body, w)
}

// box frames lines of at most w cells.
func box(st *styles, lines []string, w int) string {
	b := st.dialog
	var out []string
	out = append(out, b.Render("╭"+strings.Repeat("─", w+2)+"╮"))
	for _, l := range lines {
		out = append(out, b.Render("│")+" "+fit(l, w)+" "+b.Render("│"))
	}
	out = append(out, b.Render("╰"+strings.Repeat("─", w+2)+"╯"))
	return strings.Join(out, "\n")
}

// inputStyles are text input styles that follow the colour setting and
// keep the cursor still: a blinking cursor would need a timer and makes
// screen captures differ.
func inputStyles(st *styles) textinput.Styles {
	s := textinput.DefaultDarkStyles()
	s.Cursor.Blink = false
	if st.noColor {
		s.Focused.Prompt, s.Focused.Placeholder, s.Focused.Suggestion = st.bold, st.dim, st.dim
		s.Blurred = s.Focused
		s.Cursor.Color = lipgloss.NoColor{}
	}
	return s
}
