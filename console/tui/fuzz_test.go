package tui

import (
	"testing"

	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/protocol"
)

// fuzzKeys is the alphabet FuzzUpdate types from: every key the screen
// binds, the prompt and dialog keys, and a few letters for names.
var fuzzKeys = []string{"s", "o", "m", "c", "a", "K", "R", "X", "H", "j", "k", "g", "G", "?", "/", ":",
	"esc", "enter", "tab", "shift+tab", "up", "down", "left", "right", "backspace", "space", "pgup", "pgdown",
	"p", "b", "x", "-", "1", "2", "e", "t", "q"}

// FuzzUpdate drives the model with arbitrary key sequences, snapshot
// changes and resizes: it must never panic, must always draw exactly the
// screen size, and in read-only mode must never send anything.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4}, true)
	f.Add([]byte("s\x14\x12:fence"), false)
	f.Add([]byte{15, 16, 20, 14, 0, 21, 22, 200, 201, 202}, false)
	base := fixture(f)
	f.Fuzz(func(t *testing.T, script []byte, readOnly bool) {
		be := &fakeBackend{result: protocol.Result{OK: true}}
		m := newTestModel(t, Options{ReadOnly: readOnly, Demo: true, Backend: be}, 80, 24)
		for _, b := range script {
			var cmd tea.Cmd
			switch {
			case b >= 250: // resize
				m.Update(tea.WindowSizeMsg{Width: 30 + int(b-250)*25, Height: 10 + int(b-250)*8})
			case b >= 240: // a changed deployment: drop, reorder or empty
				s := *base
				s.Sites = append([]protocol.Site(nil), base.Sites...)
				switch b % 3 {
				case 0:
					s.Sites = s.Sites[int(b)%len(s.Sites):]
				case 1:
					s.Sites[0], s.Sites[len(s.Sites)-1] = s.Sites[len(s.Sites)-1], s.Sites[0]
				case 2:
					s.Sites, s.Geo = nil, nil
				}
				_, cmd = m.Update(ChangeMsg{protocol.Change{Snapshot: &s}})
			case b >= 230:
				_, cmd = m.Update(ConnMsg{Via: "pbx-b1", Connected: b%2 == 0})
			default:
				_, cmd = m.Update(keyMsg(fuzzKeys[int(b)%len(fuzzKeys)]))
			}
			if cmd != nil {
				if _, quit := cmd().(tea.QuitMsg); !quit {
					drain(t, m, cmd)
				}
			}
			w, h := m.width, m.height
			if w >= minWidth && h >= minHeight {
				checkSize(t, screen(m), w, h)
			} else {
				_ = screen(m)
			}
		}
		if readOnly && len(be.sent()) > 0 {
			t.Fatalf("read-only console sent %v", be.sent())
		}
	})
}
