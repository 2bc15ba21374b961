// Package localapi serves the hatui protocol to one connection at a time,
// whatever carried it: the agent's Unix socket, a peer channel from another
// agent, or an in-process pipe in the demo.
//
// It owns the protocol's rules (hello first, ids echoed, typed errors for
// bad input, the connection kept open after a bad line) and nothing else:
// what a request means is the [Backend]'s business.
package localapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hatui/hatui/protocol"
)

// Caller says who sent a request, for refusals and the audit log.
type Caller struct {
	// User is the OS user on the other end of a Unix socket (from
	// SO_PEERCRED), or the user a trusted peer agent vouched for.
	User string
	// Forwarded names the agent that relayed the request, "" if direct.
	Forwarded string
	// Transport is "unix", "peer", "pipe" or "internal".
	Transport string
	// Role is what the caller may do: from its Unix groups on the socket,
	// from the relaying agent's word on the peer channel. Empty means an
	// operator (the agent itself, the in-process demo).
	Role protocol.Role
	// Needs names the groups whose members may act, for a watcher's
	// refusal.
	Needs []string
}

// MayAct says whether the caller may change anything.
func (c Caller) MayAct() bool { return c.Role != protocol.RoleWatcher }

// Job carries out an accepted action. It reports steps through progress
// and returns how it ended.
type Job func(ctx context.Context, progress func(protocol.Progress)) protocol.Result

// Backend is what the server asks to answer requests.
type Backend interface {
	// Identity names the answering node and its deployment.
	Identity() (node, deployment string)
	// Snapshot returns what this agent knows within the scope.
	Snapshot(scope protocol.Scope) *protocol.Snapshot
	// Status answers a status request: about one node (forwarding when
	// it is another node), or the whole deployment when req.Node is "".
	Status(ctx context.Context, req protocol.StatusRequest, c Caller) (*protocol.Snapshot, error)
	// Plan checks an action and returns the job that carries it out, or
	// a *protocol.Error saying why it is refused.
	Plan(ctx context.Context, a protocol.Action, c Caller) (Job, error)
	// EventsSince returns the events after seq and the newest seq.
	EventsSince(seq uint64) ([]protocol.Event, uint64)
	// History answers a history request: the deployment's past events
	// and audit entries as this agent recorded them.
	History(ctx context.Context, req protocol.HistoryRequest, c Caller) (*protocol.History, error)
	// Subscribe returns a channel that receives a value after each change,
	// and a function that ends the subscription. Sends never block: a
	// slow watcher sees several changes folded into one.
	Subscribe() (<-chan struct{}, func())
}

// Server serves protocol connections for one backend.
type Server struct {
	b      Backend
	logger *log.Logger

	mu        sync.Mutex
	lns       []net.Listener
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
	operators []string // socket.operators: group names
	opGIDs    []string // their group ids
}

// SetOperators says which Unix groups may act through the socket. Root
// always may; with no groups, everyone who can open the socket may (the
// socket's mode and group decide who can watch). A group that does not
// exist is an error: a typo must not silently lock every operator out.
func (s *Server) SetOperators(groups []string) error {
	var gids []string
	for _, name := range groups {
		g, err := user.LookupGroup(name)
		if err != nil {
			return fmt.Errorf("looking up operators group %q (create it with groupadd, or fix socket.operators): %w", name, err)
		}
		gids = append(gids, g.Gid)
	}
	s.mu.Lock()
	s.operators, s.opGIDs = slices.Clone(groups), gids
	s.mu.Unlock()
	return nil
}

// roleOf decides what the user with uid may do on the socket.
func (s *Server) roleOf(uid int) protocol.Role {
	s.mu.Lock()
	gids := s.opGIDs
	s.mu.Unlock()
	if uid == 0 || len(gids) == 0 {
		return protocol.RoleOperator
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return protocol.RoleWatcher
	}
	have, err := u.GroupIds()
	if err != nil {
		return protocol.RoleWatcher
	}
	for _, g := range have {
		if slices.Contains(gids, g) {
			return protocol.RoleOperator
		}
	}
	return protocol.RoleWatcher
}

// New returns a server for b. logger may be nil.
func New(b Backend, logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &Server{b: b, logger: logger, conns: map[net.Conn]struct{}{}}
}

// ListenUnix creates the agent's Unix socket at path with mode 0660, owned
// by group when it is not "". A stale socket left by a crashed agent is
// replaced; a live one is an error, so two agents never share a node.
func ListenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent is already listening on %s: stop it first", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting socket mode: %w", err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("looking up socket group %q (create it with groupadd, or set socket.group): %w", group, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("giving socket to group %q: %w", group, err)
		}
	}
	return ln, nil
}

// Serve accepts connections on ln until it is closed. transport names the
// kind of listener for Caller.Transport.
func (s *Server) Serve(ln net.Listener, transport string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.ServeConn(c, s.unixCaller(c, transport))
	}
}

// unixCaller says who is on the other end of a Unix socket, from the
// kernel (SO_PEERCRED), never from what the client claims. Through the
// node's sshd that is the SSH login user: sshd's session process opens
// the socket as that user.
func (s *Server) unixCaller(c net.Conn, transport string) Caller {
	s.mu.Lock()
	needs := slices.Clone(s.operators)
	s.mu.Unlock()
	caller := Caller{Transport: transport, Role: protocol.RoleWatcher, Needs: needs}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return caller
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return caller
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cred == nil {
		return caller
	}
	caller.User = "uid " + strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(strconv.Itoa(int(cred.Uid))); err == nil {
		caller.User = u.Username
	}
	caller.Role = s.roleOf(int(cred.Uid))
	return caller
}

// Close stops every listener and connection and waits for handlers.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// session is one connection's state.
type session struct {
	s      *Server
	c      net.Conn
	w      *protocol.Writer
	caller Caller

	ctx    context.Context
	mu     sync.Mutex
	hello  bool
	watchs map[uint64]context.CancelFunc
	wg     sync.WaitGroup
}

// ServeConn runs one protocol session on c until it closes. base says
// who is on the other end; a hello may add the user (trusted only from a
// peer) and the forwarding agent.
func (s *Server) ServeConn(c net.Conn, base Caller) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()

	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{s: s, c: c, w: protocol.NewWriter(c), caller: base, ctx: ctx, watchs: map[uint64]context.CancelFunc{}}
	defer func() {
		cancel()
		c.Close()
		ss.wg.Wait()
	}()
	r := protocol.NewReader(c)
	for {
		env, err := r.Read()
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) {
				// Bad line: say so, keep the connection.
				if ss.w.Send(protocol.TypeError, env.ID, pe) != nil {
					return
				}
				continue
			}
			return
		}
		if !ss.dispatch(env) {
			return
		}
	}
}

// dispatch handles one envelope; false ends the session.
func (ss *session) dispatch(env protocol.Envelope) bool {
	if env.Type == protocol.TypeHello {
		return ss.onHello(env)
	}
	ss.mu.Lock()
	hello := ss.hello
	ss.mu.Unlock()
	if !hello {
		ss.sendErr(env.ID, protocol.Errorf(protocol.CodeNotHello, `send {"type":"hello","body":{"versions":[1]}} first`,
			"%q before hello", env.Type))
		return true
	}
	switch env.Type {
	case protocol.TypeStatus:
		var req protocol.StatusRequest
		if err := env.Decode(&req); err != nil {
			ss.sendErr(env.ID, err)
			return true
		}
		ss.goRun(func() {
			snap, err := ss.s.b.Status(ss.ctx, req, ss.caller)
			if err != nil {
				ss.sendErr(env.ID, err)
				return
			}
			ss.w.Send(protocol.TypeSnapshot, env.ID, snap)
		})
	case protocol.TypeWatch:
		var req protocol.WatchRequest
		if err := env.Decode(&req); err != nil {
			ss.sendErr(env.ID, err)
			return true
		}
		ctx, cancel := context.WithCancel(ss.ctx)
		ss.mu.Lock()
		if old := ss.watchs[env.ID]; old != nil {
			old()
		}
		ss.watchs[env.ID] = cancel
		ss.mu.Unlock()
		ss.goRun(func() { ss.watch(ctx, env.ID, req.Scope) })
	case protocol.TypeUnwatch:
		ss.mu.Lock()
		if cancel := ss.watchs[env.ID]; cancel != nil {
			cancel()
			delete(ss.watchs, env.ID)
		}
		ss.mu.Unlock()
	case protocol.TypeHistory:
		var req protocol.HistoryRequest
		if err := env.Decode(&req); err != nil {
			ss.sendErr(env.ID, err)
			return true
		}
		ss.goRun(func() {
			h, err := ss.s.b.History(ss.ctx, req, ss.caller)
			if err != nil {
				ss.sendErr(env.ID, err)
				return
			}
			ss.w.Send(protocol.TypeHistory, env.ID, h)
		})
	case protocol.TypeAction:
		var a protocol.Action
		if err := env.Decode(&a); err != nil {
			ss.sendErr(env.ID, err)
			return true
		}
		ss.goRun(func() { ss.act(env.ID, a) })
	default:
		ss.sendErr(env.ID, protocol.Errorf(protocol.CodeUnknownType,
			"requests are hello, status, watch, unwatch, history and action",
			"unknown message type %q", env.Type))
	}
	return true
}

func (ss *session) goRun(f func()) {
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		f()
	}()
}

func (ss *session) sendErr(id uint64, err error) {
	ss.w.Send(protocol.TypeError, id, protocol.AsError(err))
}

func (ss *session) onHello(env protocol.Envelope) bool {
	var h protocol.Hello
	if err := env.Decode(&h); err != nil {
		ss.sendErr(env.ID, err)
		return true
	}
	v, err := protocol.Negotiate(h.Versions)
	if err != nil {
		ss.sendErr(env.ID, err)
		return false
	}
	ss.mu.Lock()
	ss.hello = true
	// Only an authenticated peer agent may vouch for a user; on a Unix
	// socket the kernel already told us who is there.
	if ss.caller.Transport != "unix" && h.User != "" {
		ss.caller.User = h.User
	}
	if ss.caller.Transport == "peer" {
		ss.caller.Forwarded = h.Forwarded
		// The relaying agent holds the deployment key and decided what
		// its user may do from that user's groups on its own node.
		if h.Role != "" {
			ss.caller.Role = h.Role
		}
	}
	role := ss.caller.Role
	if role == "" {
		role = protocol.RoleOperator
	}
	ss.mu.Unlock()
	node, dep := ss.s.b.Identity()
	ss.w.Send(protocol.TypeWelcome, env.ID, protocol.Welcome{
		Version: v, Agent: "ha-agent/" + AgentVersion, Node: node, Deployment: dep, Role: role,
	})
	return true
}

// AgentVersion is reported in welcome messages.
var AgentVersion = "0.1.0"

func (ss *session) watch(ctx context.Context, id uint64, scope protocol.Scope) {
	ch, unsub := ss.s.b.Subscribe()
	defer unsub()
	_, seq := ss.s.b.EventsSince(0) // before the snapshot, so no event falls between
	snap := ss.s.b.Snapshot(scope)
	if ss.w.Send(protocol.TypeSnapshot, id, snap) != nil {
		return
	}
	// A wake-up is only a hint: the watcher is sent a change when there
	// are new events for it or the snapshot differs in something other
	// than freshness. Agents watch each other, so a change sent without
	// cause wakes the other side, which would send one back: the loop
	// that kept idle agents busy.
	last := snap.Fingerprint()
	var n uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		evs, next := ss.s.b.EventsSince(seq)
		seq = next
		if scope == protocol.ScopeNode {
			evs = OwnEvents(evs, ss.node())
		}
		snap := ss.s.b.Snapshot(scope)
		fp := snap.Fingerprint()
		if len(evs) == 0 && bytes.Equal(fp, last) {
			continue
		}
		last = fp
		n++
		if ss.w.Send(protocol.TypeChange, id, protocol.Change{Seq: n, Events: evs, Snapshot: snap}) != nil {
			ss.c.Close()
			return
		}
	}
}

func (ss *session) node() string {
	n, _ := ss.s.b.Identity()
	return n
}

// OwnEvents keeps the events that happened on node itself, leaving out
// membership news every agent sees for itself.
func OwnEvents(evs []protocol.Event, node string) []protocol.Event {
	var out []protocol.Event
	for _, e := range evs {
		if e.Node == node && e.Kind != "member" && !e.Relayed {
			out = append(out, e)
		}
	}
	return out
}

func (ss *session) act(id uint64, a protocol.Action) {
	job, err := ss.s.b.Plan(ss.ctx, a, ss.caller)
	if err != nil {
		ss.w.Send(protocol.TypeRefused, id, protocol.Refused{Error: *protocol.AsError(err)})
		return
	}
	ss.w.Send(protocol.TypeAccepted, id, protocol.Accepted{Verb: a.Verb, Args: a.Args})
	res := job(ss.ctx, func(p protocol.Progress) { ss.w.Send(protocol.TypeProgress, id, p) })
	ss.w.Send(protocol.TypeResult, id, res)
}
