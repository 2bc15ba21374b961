package tui

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"

	"github.com/hatui/hatui/protocol"
)

// Every string on screen that came from an agent passes through here
// first. A node name or an event message holding ESC, a newline or a
// bidirectional override would otherwise reach the operator's terminal:
// it could move the cursor, recolour a state word, break the layout or
// show a name reversed. Such characters are replaced, never interpreted.

// unsafeRune reports whether r must not reach the terminal as is.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar
}

func cleanString(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unsafeRune(r):
			return '?'
		}
		return r
	}, s)
}

// clean returns s itself when every string in it is safe to draw, and a
// cleaned deep copy otherwise: the host's snapshot is never modified.
func clean(s *protocol.Snapshot) *protocol.Snapshot {
	if !dirty(reflect.ValueOf(s).Elem()) {
		return s
	}
	b, err := json.Marshal(s)
	if err != nil {
		return s // cannot happen for these types; drawing beats dropping
	}
	var c protocol.Snapshot
	if err := json.Unmarshal(b, &c); err != nil {
		return s
	}
	scrub(reflect.ValueOf(&c).Elem())
	return &c
}

func cleanEvents(evs []protocol.Event) []protocol.Event {
	out := evs
	for i, e := range evs {
		if !dirty(reflect.ValueOf(e)) {
			continue
		}
		if &out[0] == &evs[0] {
			out = append([]protocol.Event(nil), evs...)
		}
		scrub(reflect.ValueOf(&out[i]).Elem())
	}
	return out
}

// dirty reports whether any string reachable from v needs cleaning.
func dirty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return strings.IndexFunc(v.String(), unsafeRune) >= 0
	case reflect.Pointer, reflect.Interface:
		return !v.IsNil() && dirty(v.Elem())
	case reflect.Struct:
		for _, i := range stringFields(v.Type()) {
			if dirty(v.Field(i)) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if dirty(v.Index(i)) {
				return true
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if dirty(it.Key()) || dirty(it.Value()) {
				return true
			}
		}
	}
	return false
}

// scrub cleans every string reachable from the settable value v.
func scrub(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(cleanString(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			scrub(v.Elem())
		}
	case reflect.Struct:
		for _, i := range stringFields(v.Type()) {
			scrub(v.Field(i))
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			scrub(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			k, val := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			k.Set(it.Key())
			val.Set(it.Value())
			scrub(k)
			scrub(val)
			m.SetMapIndex(k, val)
		}
		v.Set(m)
	}
}

// fieldPlans caches, per struct type, the exported fields that can hold a
// string, so that a 500-node snapshot is checked without visiting every
// number and time in it.
var fieldPlans sync.Map // reflect.Type → []int

func stringFields(t reflect.Type) []int {
	if p, ok := fieldPlans.Load(t); ok {
		return p.([]int)
	}
	var idx []int
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && holdsStrings(f.Type, map[reflect.Type]bool{}) {
			idx = append(idx, i)
		}
	}
	fieldPlans.Store(t, idx)
	return idx
}

func holdsStrings(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false // a recursive type: its strings are found on the first visit
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.String, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holdsStrings(t.Elem(), seen)
	case reflect.Map:
		return holdsStrings(t.Key(), seen) || holdsStrings(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsStrings(f.Type, seen) {
				return true
			}
		}
	}
	return false
}
