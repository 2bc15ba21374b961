package geo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hatui/hatui/agent/raftmux"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// connForward marks a geo request forwarded to the leader (raftmux).
const connForward byte = 'G'

// maxForwardBytes bounds one forwarded request or reply.
const maxForwardBytes = 1 << 20

// NewTCPStreamLayer listens on bind (host:port) and dials other voters over
// plain TCP. advertise is the address the other voters dial to reach this
// one; nil means the listener's own address. The agent normally wraps its
// authenticated channel in a raft.StreamLayer instead: plain TCP lets
// anyone who can connect confirm a failover.
func NewTCPStreamLayer(bind string, advertise net.Addr) (raft.StreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listening for geo voters on %s: %w", bind, err)
	}
	return &tcpLayer{Listener: ln, advertise: advertise}, nil
}

type tcpLayer struct {
	net.Listener
	advertise net.Addr
}

// Dial implements raft.StreamLayer.
func (t *tcpLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", string(addr))
}

// Addr implements net.Listener.
func (t *tcpLayer) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.Listener.Addr()
}

// forwardRequest asks the leader to apply an entry. The leader stamps the
// time.
type forwardRequest struct {
	From string   `json:"from"`
	Cmd  *command `json:"cmd"`
	// Deadline is when the proposer stops waiting; the leader does not
	// try to commit past it.
	Deadline time.Time `json:"deadline,omitzero"`
}

// forwardReply is the leader's answer.
type forwardReply struct {
	NotLeader bool            `json:"not_leader,omitempty"`
	Unknown   bool            `json:"unknown,omitempty"` // Err: the entry may or may not be committed
	Result    *applyResult    `json:"result,omitempty"`
	Err       *protocol.Error `json:"error,omitempty"`
}

// errNoAnswer marks a forwarded request that may have reached the leader
// but got no answer: it may or may not have taken effect, so it must not
// be sent again blindly.
var errNoAnswer = errors.New("the geo leader did not answer")

// forward sends req to the voter at addr through m and returns its reply,
// waiting until ctx ends or, without a deadline, for timeout. An error
// wrapping errNoAnswer means the request may have been applied.
func forward(ctx context.Context, m *raftmux.Mux, timeout time.Duration, addr raft.ServerAddress, req forwardRequest) (*forwardReply, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(timeout)
	}
	c, err := m.DialForward(addr, time.Until(deadline))
	if err != nil {
		return nil, fmt.Errorf("dialling the geo leader at %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("sending to the geo leader at %s: %w (%w)", addr, errNoAnswer, err)
	}
	var rep forwardReply
	if err := json.NewDecoder(io.LimitReader(c, maxForwardBytes)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading the reply of the geo leader at %s: %w (%w)", addr, errNoAnswer, err)
	}
	return &rep, nil
}

// serveForward answers one forwarded request on c.
func serveForward(c net.Conn, timeout time.Duration, apply func(context.Context, *command) (*forwardReply, error)) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var req forwardRequest
	rep := &forwardReply{}
	if err := json.NewDecoder(io.LimitReader(c, maxForwardBytes)).Decode(&req); err != nil || req.Cmd == nil {
		rep.Err = protocol.Errorf(protocol.CodeBadRequest, "", "geo forward request is not valid: %v", err)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if !req.Deadline.IsZero() {
			var c2 context.CancelFunc
			ctx, c2 = context.WithDeadline(ctx, req.Deadline)
			defer c2()
		}
		r, err := apply(ctx, req.Cmd)
		cancel()
		if err != nil {
			var ou outcomeUnknown
			rep.Err, rep.Unknown = protocol.AsError(err), errors.As(err, &ou)
		} else {
			rep = r
		}
	}
	json.NewEncoder(c).Encode(rep)
}
