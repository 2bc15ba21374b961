package command

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSummary is the longest Summary returns, in runes.
const MaxSummary = 240

// summaryLines is how many of the last lines Summary joins.
const summaryLines = 3

// Summary reduces a program's output to one printable line of at most
// MaxSummary runes. When a line reports an error (OCF agents log
// "ERROR: ..." through ocf_log) the last such line is the summary;
// otherwise the last few non-empty lines are joined with " | ", because
// programs say what went wrong at the end, but tools like systemctl put
// the reason on the line before the advice. Control characters and
// terminal escapes are removed and invalid UTF-8 is replaced, so that the
// line is safe to put in JSON, a log and the console.
func Summary(out []byte) string {
	var last []string
	var lastErr string
	for len(out) > 0 {
		var line []byte
		i := bytes.IndexAny(out, "\r\n")
		if i < 0 {
			line, out = out, nil
		} else {
			line, out = out[:i], out[i+1:]
		}
		s := clean(line)
		if s == "" {
			continue
		}
		if len(last) == summaryLines {
			last = last[1:]
		}
		last = append(last, s)
		if strings.Contains(s, "ERROR") {
			lastErr = s
		}
	}
	if lastErr != "" {
		return lastErr
	}
	return clean([]byte(strings.Join(last, " | ")))
}

// clean makes one line printable: escape sequences dropped, control
// characters and runs of white space folded to one space, invalid UTF-8
// replaced, and the result cut to MaxSummary runes.
func clean(line []byte) string {
	var b strings.Builder
	n := 0
	space := false
	for len(line) > 0 && n < MaxSummary {
		r, size := utf8.DecodeRune(line)
		if r == 0x1b { // ESC: skip a CSI sequence "ESC [ ... final" or a lone ESC
			line = skipEscape(line)
			continue
		}
		line = line[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '\uFFFD'
		case unicode.IsSpace(r) || unicode.IsControl(r):
			space = b.Len() > 0
			continue
		case !unicode.IsPrint(r):
			r = '\uFFFD'
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
			if n >= MaxSummary {
				break
			}
		}
		b.WriteRune(r)
		n++
	}
	s := b.String()
	if len(line) > 0 && n >= MaxSummary {
		// Cut: mark it so nobody takes a truncated message for the whole.
		rs := []rune(s)
		s = string(rs[:MaxSummary-1]) + "…"
	}
	return s
}

// skipEscape drops an ANSI escape sequence at the start of b.
func skipEscape(b []byte) []byte {
	b = b[1:]
	if len(b) == 0 || b[0] != '[' {
		return b
	}
	b = b[1:]
	for len(b) > 0 {
		c := b[0]
		b = b[1:]
		if c >= 0x40 && c <= 0x7e {
			break
		}
	}
	return b
}
