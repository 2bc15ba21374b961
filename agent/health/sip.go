package health

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sipProbe asks a PBX whether it answers: a SIP OPTIONS request over UDP,
// as Kamailio's dispatcher and SBCs ping their peers. Any response with
// the request's Call-ID means the SIP stack is alive (by default even
// 404 or 503: the PBX answered); accept narrows that to chosen codes.
// The request is retransmitted on RFC 3261's timer E schedule (500 ms,
// doubling up to 4 s) so one lost datagram does not fail the check.
//
// Parameters:
//
//	address  host:port of the PBX's SIP UDP listener (required)
//	accept   status codes that count as healthy: "any" (default),
//	         or a list such as "200" or "200-299,404"
//	uri      the Request-URI (default sip:ADDRESS)
//	from     the user part of the From header (default "hatui")
type sipProbe struct {
	addr   string
	accept codeSet
	uri    string
	from   string
}

func newSIP(check string, p map[string]string) (prober, error) {
	addr, err := checkHostPort(check, "address", p["address"])
	if err != nil {
		return nil, err
	}
	acc, err := parseCodes(p["accept"], 100, 699)
	if err != nil {
		return nil, paramError(check, "accept", err.Error(), "\"any\", or codes and ranges such as \"200-299,404\"")
	}
	sp := &sipProbe{addr: addr, accept: acc, uri: p["uri"], from: p["from"]}
	if sp.uri == "" {
		sp.uri = "sip:" + addr
	}
	if !(strings.HasPrefix(sp.uri, "sip:") || strings.HasPrefix(sp.uri, "sips:")) || strings.ContainsAny(sp.uri, " \t\r\n<>") {
		return nil, paramError(check, "uri", fmt.Sprintf("%q is not a SIP URI", sp.uri), "a URI such as sip:ping@192.0.2.10:5060")
	}
	if sp.from == "" {
		sp.from = "hatui"
	}
	if strings.ContainsAny(sp.from, " \t\r\n<>@:;") {
		return nil, paramError(check, "from", fmt.Sprintf("%q is not a SIP user name", sp.from), "a plain user name such as \"hatui\"")
	}
	return sp, nil
}

// SIP timers of RFC 3261 17.1.2.2.
const (
	sipT1 = 500 * time.Millisecond
	sipT2 = 4 * time.Second
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// OptionsRequest is the OPTIONS request the sip check sends.
func OptionsRequest(uri, fromUser, local, to, callID, branch, tag string) []byte {
	host, _, _ := net.SplitHostPort(local)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "OPTIONS %s SIP/2.0\r\n", uri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s\r\n", fromUser, host, tag)
	fmt.Fprintf(&b, "To: <sip:%s>\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	b.WriteString("CSeq: 1 OPTIONS\r\n")
	fmt.Fprintf(&b, "Contact: <sip:%s@%s>\r\n", fromUser, local)
	b.WriteString("Accept: application/sdp\r\n")
	b.WriteString("User-Agent: hatui-agent\r\n")
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}

func (s *sipProbe) probe(ctx context.Context) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", s.addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	host, _, _ := net.SplitHostPort(local)
	callID := randHex(12) + "@" + host
	branch := "z9hG4bK" + randHex(8) // the RFC 3261 magic cookie
	req := OptionsRequest(s.uri, s.from, local, s.addr, callID, branch, randHex(6))

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	start := time.Now()
	buf := make([]byte, 64<<10)
	interval := sipT1
	var lastBad error
	for {
		if _, err := conn.Write(req); err != nil {
			return "", sipReadError(s.addr, err)
		}
		next := time.Now().Add(interval)
		interval = min(2*interval, sipT2)
		if next.After(deadline) {
			next = deadline
		}
		conn.SetReadDeadline(next)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit, or give up below
				}
				return "", sipReadError(s.addr, err)
			}
			resp, err := ParseSIPResponse(buf[:n])
			if err != nil {
				lastBad = err
				continue
			}
			if resp.CallID != callID {
				continue // an answer to an earlier probe
			}
			if !s.accept.has(resp.Code) {
				if resp.Code < 200 {
					continue // provisional: wait for the final answer
				}
				return "", fmt.Errorf("%s answered %d %s; accepted: %s", s.addr, resp.Code, resp.Reason, s.accept)
			}
			return fmt.Sprintf("%d %s in %s", resp.Code, resp.Reason, time.Since(start).Round(time.Microsecond)), nil
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			if lastBad != nil {
				return "", fmt.Errorf("no valid SIP answer from %s (last datagram: %v): %w", s.addr, lastBad, ErrTimeout)
			}
			return "", fmt.Errorf("no SIP answer from %s within %s: %w", s.addr, time.Since(start).Round(time.Millisecond), ErrTimeout)
		}
	}
}

func sipReadError(addr string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("nothing listens on %s (ICMP port unreachable): %w", addr, err)
	}
	return err
}

// codeRange is an inclusive range of status codes.
type codeRange struct{ lo, hi int }

// codeSet is a set of status codes; empty means any.
type codeSet []codeRange

func (c codeSet) has(code int) bool {
	if len(c) == 0 {
		return true
	}
	for _, r := range c {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

func (c codeSet) String() string {
	if len(c) == 0 {
		return "any"
	}
	var s []string
	for _, r := range c {
		if r.lo == r.hi {
			s = append(s, strconv.Itoa(r.lo))
		} else {
			s = append(s, fmt.Sprintf("%d-%d", r.lo, r.hi))
		}
	}
	return strings.Join(s, ",")
}

// parseCodes reads "any", "" (any), or a list like "200-299,404" of codes
// within [min, max].
func parseCodes(s string, minCode, maxCode int) (codeSet, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "any") {
		return nil, nil
	}
	var out codeSet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(strings.TrimSpace(lo))
		h, err2 := strconv.Atoi(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("%q is not a status code or range", part)
		case l < minCode || h > maxCode || l > h:
			return nil, fmt.Errorf("%q is outside %d-%d or reversed", part, minCode, maxCode)
		}
		out = append(out, codeRange{l, h})
	}
	return out, nil
}
