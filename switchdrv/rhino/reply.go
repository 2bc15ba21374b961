package rhino

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Replies are the byte strings the card answers with, as configured: the
// card's real replies are not public (devices.md), so they come from the
// node config. An empty string is never matched.
type Replies struct {
	OK    string
	Busy  string
	Error string
}

// Outcome classifies the bytes read so far.
type Outcome int

// Outcomes of ParseReply.
const (
	Incomplete Outcome = iota // keep reading
	OK
	Busy
	Failed     // the card said it could not
	Unexpected // a complete line that is none of the above, or too much
)

func (o Outcome) String() string {
	return [...]string{"incomplete", "ok", "busy", "failed", "unexpected"}[o]
}

// maxReply bounds what is read for one command; a card that talks more is
// not the card the config describes.
const maxReply = 256

// ParseReply looks at everything read since the command was sent. The
// earliest configured reply found wins. Without one, a finished line (CR or
// LF) that cannot be the start of a configured reply is Unexpected, as is
// more than 256 bytes; anything else may still grow into a reply.
func ParseReply(buf []byte, r Replies) (Outcome, error) {
	best, bestAt := Incomplete, -1
	for _, c := range []struct {
		s string
		o Outcome
	}{{r.OK, OK}, {r.Busy, Busy}, {r.Error, Failed}} {
		if c.s == "" {
			continue
		}
		if i := bytes.Index(buf, []byte(c.s)); i >= 0 && (bestAt < 0 || i < bestAt) {
			best, bestAt = c.o, i
		}
	}
	if bestAt >= 0 {
		return best, nil
	}
	if len(buf) > maxReply {
		return Unexpected, fmt.Errorf("%d bytes without a known reply (starts %.40q)", len(buf), buf)
	}
	if bytes.ContainsAny(buf, "\r\n") {
		for _, s := range []string{r.OK, r.Busy, r.Error} {
			if s != "" && bytes.HasPrefix([]byte(s), buf) {
				return Incomplete, nil
			}
		}
		return Unexpected, fmt.Errorf("unexpected reply %q", buf)
	}
	return Incomplete, nil
}

// Unescape turns the escapes a config file can hold into bytes: \r, \n,
// \t, \\ and \xNN; and replaces {relay} with the relay number. Command and
// reply strings are binary-ish, and a TOML or shell quoting layer may or
// may not have already turned "\r" into a CR, so both forms work.
func Unescape(s string, relay int) (string, error) {
	s = strings.ReplaceAll(s, "{relay}", strconv.Itoa(relay))
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%q ends in a lone backslash", s)
		}
		i++
		switch s[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("%q: \\x needs two hex digits", s)
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("%q: unknown escape \\%c (use \\r, \\n, \\t, \\\\ or \\xNN)", s, s[i])
		}
	}
	return b.String(), nil
}
