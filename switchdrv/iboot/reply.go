package iboot

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Reply is what an iBoot answers.
type Reply string

// Replies of the classic TCP protocol (devices.md).
const (
	ReplyOn    Reply = "ON"
	ReplyOff   Reply = "OFF"
	ReplyCycle Reply = "CYCLE"
	ReplyBusy  Reply = "BUSY"
)

// errNoReply: the device closed the connection without a word.
var errNoReply = errors.New("the device closed the connection without a reply")

// ParseTCPReply parses a classic-protocol reply: one of ON, OFF, CYCLE or
// BUSY, then the device closes the connection. Case, surrounding white
// space, CR/LF and NUL padding are tolerated; anything else is an error
// quoting what came.
func ParseTCPReply(b []byte) (Reply, error) {
	s := strings.ToUpper(string(bytes.Trim(b, " \t\r\n\x00")))
	switch r := Reply(s); r {
	case ReplyOn, ReplyOff, ReplyCycle, ReplyBusy:
		return r, nil
	case "":
		return "", errNoReply
	}
	return "", fmt.Errorf("unexpected reply %.40q, want ON, OFF, CYCLE or BUSY", b)
}

// ParseHTTPStatus finds "<status>ON</status>" or OFF (or BUSY) in the HTML
// an iBoot's HTTP query form returns (devices.md). Tags are matched without
// regard to case; the first status element counts.
func ParseHTTPStatus(body []byte) (Reply, error) {
	lower := bytes.ToLower(body)
	start := bytes.Index(lower, []byte("<status>"))
	if start < 0 {
		return "", fmt.Errorf("reply has no <status> element (starts %.40q)", body)
	}
	start += len("<status>")
	end := bytes.Index(lower[start:], []byte("</status>"))
	if end < 0 {
		return "", errors.New("reply's <status> element is not closed")
	}
	s := strings.ToUpper(strings.TrimSpace(string(body[start : start+end])))
	switch r := Reply(s); r {
	case ReplyOn, ReplyOff, ReplyBusy, ReplyCycle:
		return r, nil
	}
	return "", fmt.Errorf("unexpected status %.20q, want ON or OFF", s)
}
