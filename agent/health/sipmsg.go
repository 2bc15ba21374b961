package health

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SIPResponse is what the sip check reads from a SIP response.
type SIPResponse struct {
	Code   int
	Reason string
	CallID string
	// CSeq is the sequence number and method of the CSeq header.
	CSeq       uint32
	CSeqMethod string
	// Branch is the branch parameter of the topmost Via.
	Branch string
}

// maxSIPLine bounds what an error message quotes of a bad line.
const maxSIPLine = 80

// ParseSIPResponse parses the start line and headers of a SIP response
// (RFC 3261 section 7). It is lenient where real PBXs and proxies are
// sloppy — CRLFs before the start line, bare LF line ends, any case in
// the version and header names, white space around the colon, compact
// header names (i, v), folded header lines — and strict where a mistake
// would mislead the check: the start line must be a response with a
// three-digit code from 100 to 699.
func ParseSIPResponse(b []byte) (SIPResponse, error) {
	var r SIPResponse
	// RFC 3261 7.5: ignore CRLFs before the start line (keep-alives).
	b = bytes.TrimLeft(b, "\r\n \t")
	if len(b) == 0 {
		return r, errors.New("empty SIP message")
	}
	head := b
	if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
		head = b[:i+1]
	} else if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		head = b[:i+1]
	}
	lines := splitLines(head)
	start := lines[0]
	fields := strings.Fields(start)
	if len(fields) < 2 {
		return r, fmt.Errorf("bad SIP start line %q", quote(start))
	}
	if !strings.EqualFold(fields[0], "SIP/2.0") {
		if strings.HasPrefix(strings.ToUpper(fields[len(fields)-1]), "SIP/") {
			return r, fmt.Errorf("a SIP request (%s), not a response", quote(fields[0]))
		}
		return r, fmt.Errorf("not a SIP/2.0 response: start line %q", quote(start))
	}
	code := fields[1]
	if len(code) != 3 {
		return r, fmt.Errorf("SIP status code %q is not three digits", quote(code))
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 || n > 699 {
		return r, fmt.Errorf("SIP status code %q is not from 100 to 699", quote(code))
	}
	r.Code = n
	// The reason phrase is the rest of the line after the code, spaces kept.
	if i := strings.Index(start, code); i >= 0 {
		r.Reason = strings.TrimSpace(start[i+3:])
	}

	for _, h := range unfold(lines[1:]) {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			continue // not a header; a lenient reader skips it
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		switch name {
		case "call-id", "i":
			if r.CallID == "" {
				r.CallID = value
			}
		case "cseq":
			if r.CSeqMethod != "" {
				continue
			}
			num, method, _ := strings.Cut(value, " ")
			v, err := strconv.ParseUint(strings.TrimSpace(num), 10, 32)
			if err != nil {
				return r, fmt.Errorf("bad CSeq %q", quote(value))
			}
			r.CSeq = uint32(v)
			r.CSeqMethod = strings.TrimSpace(method)
		case "via", "v":
			if r.Branch == "" {
				r.Branch = viaBranch(value)
			}
		}
	}
	return r, nil
}

// splitLines splits on LF, dropping a CR before it.
func splitLines(b []byte) []string {
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		out = append(out, string(bytes.TrimSuffix(l, []byte("\r"))))
	}
	return out
}

// unfold joins header lines continued with leading white space and drops
// empty ones.
func unfold(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += " " + strings.TrimSpace(l)
			continue
		}
		out = append(out, l)
	}
	return out
}

// viaBranch returns the branch parameter of the first Via value in v
// (a header may carry several, comma-separated).
func viaBranch(v string) string {
	first, _, _ := strings.Cut(v, ",")
	for _, p := range strings.Split(first, ";")[1:] {
		k, val, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "branch") {
			return strings.TrimSpace(val)
		}
	}
	return ""
}

// quote cuts s for an error message and makes it printable.
func quote(s string) string {
	if len(s) > maxSIPLine {
		s = s[:maxSIPLine] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
