package failover

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/raftmux"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/agent/raftstore"
	"github.com/hatui/hatui/protocol"
)

// NewTCPStreamLayer listens on bind (host:port) and dials other voters
// over plain TCP. Forwarded requests are signed with the cluster key, but
// raft's own traffic is not: the agent should give Open a stream layer
// over its authenticated channel instead, as for the geo manager.
func NewTCPStreamLayer(bind string) (raft.StreamLayer, error) {
	ln, err := listenRetry(func() (net.Listener, error) { return net.Listen("tcp", bind) })
	if err != nil {
		return nil, fmt.Errorf("listening for failover voters on %s: %w", bind, err)
	}
	return tcpLayer{ln}, nil
}

type tcpLayer struct{ net.Listener }

// Dial implements raft.StreamLayer. When listening on one address, it
// dials from that address too, so that the other voters and firewalls see
// the voter's own address rather than whatever the kernel picks.
func (t tcpLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if a, ok := t.Listener.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: a.IP}
	}
	return d.Dial("tcp", string(addr))
}

// connForward marks a request forwarded to the leader (raftmux).
const connForward byte = 'F'

const maxForwardBytes = 1 << 20

// forwardRequest asks the leader to apply a command, or pings.
type forwardRequest struct {
	Kind string   `json:"kind"` // "apply" or "ping"
	From string   `json:"from"`
	Cmd  *command `json:"cmd,omitempty"`
	// MAC is HMAC-SHA256 with the cluster key over kind, from and the
	// command's JSON.
	MAC string `json:"mac"`
}

type forwardReply struct {
	NotLeader bool            `json:"not_leader,omitempty"`
	Result    *result         `json:"result,omitempty"`
	Err       *protocol.Error `json:"error,omitempty"`
}

func forwardMAC(key []byte, kind, from string, cmd *command) (string, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind + "\n" + from + "\n"))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil)), nil
}

// decodeForward reads and verifies one forwarded request.
func decodeForward(r io.Reader, key []byte) (*forwardRequest, error) {
	var req forwardRequest
	if err := json.NewDecoder(io.LimitReader(r, maxForwardBytes)).Decode(&req); err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "", "failover forward request is not valid JSON: %v", err)
	}
	if req.Kind != "apply" && req.Kind != "ping" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "", "failover forward request of unknown kind %q", req.Kind)
	}
	if req.Kind == "apply" && req.Cmd == nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "", "failover forward request without a command")
	}
	want, err := forwardMAC(key, req.Kind, req.From, req.Cmd)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "", "failover forward request: %v", err)
	}
	if !hmac.Equal([]byte(want), []byte(req.MAC)) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "every voter needs the same cluster key", "failover forward request from %q has a bad signature", req.From)
	}
	return &req, nil
}

// raftNode is this voter's raft instance and its transport.
type raftNode struct {
	cfg    Config
	key    []byte
	fsm    *fsm
	stores *raftstore.Stores
	mux    *raftmux.Mux
	hl     hclog.Logger
	retry  time.Duration
	done   chan struct{}

	mu    sync.Mutex
	raft  *raft.Raft
	trans *raft.NetworkTransport
}

func (r *raftNode) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(r.cfg.Node)
	rc.HeartbeatTimeout = r.cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = r.cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = r.cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = r.cfg.Raft.CommitTimeout
	rc.SnapshotThreshold = 1024
	rc.Logger = r.hl
	return rc
}

func (r *raftNode) newTransport() *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  r.mux.Layer(),
		MaxPool: 3,
		Timeout: r.cfg.Raft.TransportTimeout,
		Logger:  r.hl.Named("transport"),
	})
}

// openRaft opens (or creates) the raft state and starts raft. Before raft
// starts, before calls it with the decision state as this node's own
// stores hold it (see localState): what this node last knew, which may
// lag the cluster's.
func openRaft(cfg Config, stream raft.StreamLayer, key []byte, f *fsm, raftLog io.Writer, before func(local *State)) (*raftNode, error) {
	if raftLog == nil {
		raftLog = io.Discard
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "failover-raft", Output: raftLog, Level: hclog.Info})
	dir := ""
	if cfg.DataDir != "" {
		dir = filepath.Join(cfg.DataDir, "failover-raft")
	}
	st, err := raftstore.Open(dir, "failover", hl)
	if err != nil {
		return nil, err
	}
	r := &raftNode{cfg: cfg, key: key, fsm: f, stores: st, hl: hl, done: make(chan struct{}),
		retry: min(max(cfg.Timing.Keepalive/2, 5*time.Millisecond), time.Second)}
	r.mux = raftmux.New(stream, "failover", connForward, cfg.Raft.TransportTimeout)
	r.trans = r.newTransport()
	fail := func(err error) (*raftNode, error) {
		r.trans.Close()
		r.mux.Close()
		st.Close()
		return nil, err
	}
	existing, err := raft.HasExistingState(st.Logs, st.Stable, st.Snaps)
	if err != nil {
		return fail(fmt.Errorf("reading the failover raft state: %w", err))
	}
	if before != nil {
		local := newState()
		if existing {
			if local, err = localState(st, hl); err != nil {
				return fail(err)
			}
		}
		before(local)
	}
	if !existing {
		// Every voter bootstraps the same configuration, which raft
		// allows; they then elect a leader among themselves.
		var conf raft.Configuration
		for _, v := range cfg.Voters {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.Name), Address: raft.ServerAddress(v.Addr)})
		}
		if err := raft.BootstrapCluster(r.raftConfig(), st.Logs, st.Stable, st.Snaps, r.trans, conf); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fail(fmt.Errorf("bootstrapping the failover raft group: %w", err))
		}
	}
	rf, err := raft.NewRaft(r.raftConfig(), f, st.Logs, st.Stable, st.Snaps, r.trans)
	if err != nil {
		return fail(fmt.Errorf("starting failover raft: %w", err))
	}
	r.raft = rf
	r.mux.Start(r.serveForward)
	return r, nil
}

// localState replays this node's own snapshot and log into a scratch
// state machine: the decision state as this node last knew it, without
// asking anyone. Entries after the last one known committed are applied
// too; the result is for deciding what this node must do before it hears
// from the others, never for a decision that needs the log.
func localState(st *raftstore.Stores, hl hclog.Logger) (*State, error) {
	f := newFSM(nil)
	var from uint64
	if snaps, err := st.Snaps.List(); err != nil {
		return nil, fmt.Errorf("listing the failover raft snapshots: %w", err)
	} else if len(snaps) > 0 {
		_, rc, err := st.Snaps.Open(snaps[0].ID)
		if err != nil {
			return nil, fmt.Errorf("opening failover raft snapshot %s: %w", snaps[0].ID, err)
		}
		if err := f.Restore(rc); err != nil {
			return nil, err
		}
		from = snaps[0].Index
	}
	first, err := st.Logs.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the failover raft log: %w", err)
	}
	last, err := st.Logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the failover raft log: %w", err)
	}
	for i := max(from+1, first); first > 0 && i <= last; i++ {
		var l raft.Log
		if err := st.Logs.GetLog(i, &l); err != nil {
			hl.Warn("reading the local failover log before start", "index", i, "error", err)
			continue
		}
		if l.Type == raft.LogCommand {
			f.Apply(&l)
		}
	}
	return f.state(), nil
}

func (r *raftNode) get() *raft.Raft {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.raft
}

func (r *raftNode) isLeader() bool { return r.get().State() == raft.Leader }

// leader returns the leader's id, or "".
func (r *raftNode) leader() string {
	_, id := r.get().LeaderWithID()
	return string(id)
}

var errNotLeader = errors.New("not the failover leader")

// applyLocal stamps c with this leader's clock and applies it.
func (r *raftNode) applyLocal(ctx context.Context, c *command) (result, error) {
	c.At = time.Now().UTC().Round(0)
	b, err := json.Marshal(c)
	if err != nil {
		return result{}, protocol.Errorf(protocol.CodeInternal, "", "encoding a failover command: %v", err)
	}
	timeout := r.cfg.Raft.TransportTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return result{}, context.DeadlineExceeded
	}
	f := r.get().Apply(b, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader):
			return result{}, errNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			return result{}, protocol.Errorf(protocol.CodeUnreachable, "see status for whether it took effect",
				"the failover leader lost its majority while committing %s: it may or may not have taken effect", c.Op)
		}
		return result{}, fmt.Errorf("committing failover %s: %w", c.Op, err)
	}
	res, ok := f.Response().(result)
	if !ok {
		return result{}, protocol.Errorf(protocol.CodeInternal, "", "failover %s: the state machine gave %T", c.Op, f.Response())
	}
	return res, nil
}

// serveForward answers one forwarded request.
func (r *raftNode) serveForward(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(r.cfg.Raft.TransportTimeout))
	rep := &forwardReply{}
	req, err := decodeForward(c, r.key)
	switch {
	case err != nil:
		rep.Err = protocol.AsError(err)
	case req.Kind == "ping":
	case !r.isLeader():
		rep.NotLeader = true
	default:
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Raft.TransportTimeout)
		res, err := r.applyLocal(ctx, req.Cmd)
		cancel()
		switch {
		case errors.Is(err, errNotLeader):
			rep.NotLeader = true
		case err != nil:
			rep.Err = protocol.AsError(err)
		default:
			rep.Result = &res
		}
	}
	json.NewEncoder(c).Encode(rep)
}

// call sends one request to the voter at addr.
func (r *raftNode) call(ctx context.Context, addr raft.ServerAddress, req forwardRequest) (*forwardReply, error) {
	mac, err := forwardMAC(r.key, req.Kind, req.From, req.Cmd)
	if err != nil {
		return nil, err
	}
	req.MAC = mac
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(r.cfg.Raft.TransportTimeout)
	}
	c, err := r.mux.DialForward(addr, time.Until(deadline))
	if err != nil {
		return nil, fmt.Errorf("dialling %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("sending to %s: %w", addr, err)
	}
	var rep forwardReply
	if err := json.NewDecoder(io.LimitReader(c, maxForwardBytes)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("reading the reply from %s: %w", addr, err)
	}
	return &rep, nil
}

// ping checks that the voter's engine answers on the failover channel.
func (r *raftNode) ping(ctx context.Context, v Voter) error {
	rep, err := r.call(ctx, raft.ServerAddress(v.Addr), forwardRequest{Kind: "ping", From: r.cfg.Node})
	if err != nil {
		return err
	}
	if rep.Err != nil {
		return rep.Err
	}
	return nil
}

// propose has c applied by the leader, wherever it is, retrying until ctx
// ends while there is no leader. A refusal by the rules is returned as its
// *protocol.Error together with the result.
func (r *raftNode) propose(ctx context.Context, c *command) (result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.Raft.TransportTimeout)
		defer cancel()
	}
	c.By = r.cfg.Node
	var lastErr error
	for {
		wait := r.fsm.changed.wait()
		addr, id := r.get().LeaderWithID()
		var res result
		var err error
		switch id {
		case "":
			err = errors.New("no leader elected")
		case raft.ServerID(r.cfg.Node):
			res, err = r.applyLocal(ctx, c)
		default:
			var rep *forwardReply
			rep, err = r.call(ctx, addr, forwardRequest{Kind: "apply", From: r.cfg.Node, Cmd: c})
			switch {
			case err != nil:
			case rep.NotLeader:
				err = errNotLeader
			case rep.Err != nil:
				return result{}, rep.Err
			case rep.Result == nil:
				err = fmt.Errorf("the failover leader %s sent an empty reply", id)
			default:
				res = *rep.Result
			}
		}
		if err == nil {
			if res.Err != nil {
				return res, res.Err
			}
			return res, nil
		}
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return result{}, err
		}
		lastErr = err
		t := time.NewTimer(r.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return result{}, protocol.Errorf(protocol.CodeUnreachable,
				"a decision needs a majority of the cluster's voters: check the links to the other nodes and the witness",
				"no failover leader reachable from %s (%v)", r.cfg.Node, lastErr)
		case <-r.done:
			t.Stop()
			return result{}, protocol.Errorf(protocol.CodeUnreachable, "", "the failover engine of %s is shutting down", r.cfg.Node)
		case <-wait:
			t.Stop()
		case <-t.C:
		}
	}
}

// servers returns the current raft configuration.
func (r *raftNode) servers() ([]raft.Server, error) {
	f := r.get().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// forceAlone rewrites the raft configuration to this voter alone and
// restarts raft, so that it can commit without the voters it lost. Only
// safe when those voters cannot form a majority of the old configuration
// among themselves (see Engine.canForce).
func (r *raftNode) forceAlone() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.raft.Shutdown().Error(); err != nil {
		return fmt.Errorf("stopping raft for recovery: %w", err)
	}
	me, _ := r.cfg.voter(r.cfg.Node)
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(me.Name), Address: raft.ServerAddress(me.Addr)}}}
	trans := r.newTransport()
	recErr := raft.RecoverCluster(r.raftConfig(), newFSM(nil), r.stores.Logs, r.stores.Stable, r.stores.Snaps, trans, conf)
	rf, err := raft.NewRaft(r.raftConfig(), r.fsm, r.stores.Logs, r.stores.Stable, r.stores.Snaps, trans)
	if err != nil {
		return fmt.Errorf("restarting raft after recovery: %w", errors.Join(recErr, err))
	}
	r.raft, r.trans = rf, trans
	if recErr != nil {
		return fmt.Errorf("recovering the failover raft group alone: %w", recErr)
	}
	return nil
}

// addVoter adds v back to the configuration (leader only).
func (r *raftNode) addVoter(v Voter) error {
	return r.get().AddVoter(raft.ServerID(v.Name), raft.ServerAddress(v.Addr), 0, r.cfg.Raft.TransportTimeout).Error()
}

func (r *raftNode) close() error {
	close(r.done)
	errs := []error{r.get().Shutdown().Error(), r.mux.Close(), r.stores.Close()}
	return errors.Join(errs...)
}
