package sshdial

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Kind classifies why reaching an agent through SSH failed, so the console
// can say what to do and scripts can tell the cases apart.
type Kind int

// The kinds of failure.
const (
	// KindUnreachable: no TCP connection, no SSH server answering, a jump
	// host that could not reach the next hop, or a timeout.
	KindUnreachable Kind = iota + 1
	// KindAuth: the node's sshd accepted none of our keys, or a key we
	// need is passphrase-protected and no ssh-agent holds it.
	KindAuth
	// KindHostKeyUnknown: known_hosts has no key for the host and nobody
	// (or StrictHostKeyChecking yes) accepted the one offered.
	KindHostKeyUnknown
	// KindHostKeyChanged: known_hosts has a different key for the host
	// (or lists the offered key as revoked). Never accepted.
	KindHostKeyChanged
	// KindSocket: logged in, but sshd would not or could not connect us
	// to the agent's Unix socket.
	KindSocket
	// KindConfig: ssh_config, the target or a known_hosts file is wrong.
	KindConfig
)

var kindNames = map[Kind]string{
	KindUnreachable:    "unreachable",
	KindAuth:           "authentication failed",
	KindHostKeyUnknown: "host key unknown",
	KindHostKeyChanged: "host key changed",
	KindSocket:         "agent socket not reachable",
	KindConfig:         "configuration error",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Sentinels for errors.Is: errors.Is(err, sshdial.ErrHostKeyChanged)
// holds for an *Error of that kind.
var (
	ErrUnreachable    = errors.New("unreachable")
	ErrAuth           = errors.New("authentication failed")
	ErrHostKeyUnknown = errors.New("host key unknown")
	ErrHostKeyChanged = errors.New("host key changed")
	ErrSocket         = errors.New("agent socket not reachable")
	ErrConfig         = errors.New("ssh configuration error")
)

var sentinels = map[Kind]error{
	KindUnreachable:    ErrUnreachable,
	KindAuth:           ErrAuth,
	KindHostKeyUnknown: ErrHostKeyUnknown,
	KindHostKeyChanged: ErrHostKeyChanged,
	KindSocket:         ErrSocket,
	KindConfig:         ErrConfig,
}

// ErrClosed is returned by Dial after Close.
var ErrClosed = errors.New("ssh dialer closed")

// Error is a failure to reach the agent, saying at which hop, what
// happened and what the operator should do.
type Error struct {
	Kind Kind
	Host string // the hop, e.g. "pbx-a1 (ops@10.1.1.1:22)"
	Msg  string // what happened
	Hint string // what to do about it
	Err  error  // the underlying cause, if any

	// Key is the host key the server offered (host key errors).
	Key ssh.PublicKey
	// Known are the known_hosts entries for the host (KindHostKeyChanged):
	// the file and line to fix.
	Known []knownhosts.KnownKey
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Host != "" {
		s = e.Host + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrXxx) match on Kind.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Kind]
	return ok && s == target
}

// KindOf returns the Kind of the first *Error in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
