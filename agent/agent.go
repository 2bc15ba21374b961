// Package agent is ha-agent: it knows the whole deployment through Serf,
// keeps this node's operator flags, answers the local protocol, and
// forwards requests about other nodes to their agents over the peer
// channel.
//
// Each node owns its own flags (standby, maintenance): they are persisted in
// its state directory and published in its Serf tags, so every agent knows
// them and none can disagree about whose they are. A request to change a
// node's flag is carried out by that node's agent, wherever it arrives.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hatui/hatui/agent/alert"

	"github.com/hashicorp/memberlist"

	"github.com/hatui/hatui/agent/audit"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/history"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/agent/metrics"
	"github.com/hatui/hatui/agent/peer"
	"github.com/hatui/hatui/protocol"
)

// Tag keys published in Serf. Short, because all tags share 512 bytes.
const (
	tagDeployment = "dep"
	tagSite       = "site"
	tagCluster    = "cluster"
	tagRole       = "role"
	tagPeer       = "peer"
	tagStandby    = "sb"
	tagMaint      = "mt"
	tagVersion    = "v"
)

// Options are the start-up choices that are not node configuration.
type Options struct {
	// Insecure allows running without a gossip key (and so without
	// forwarding). Only for throwaway test setups.
	Insecure bool
	// Logger receives the agent's log; nil discards it.
	Logger *log.Logger
	// WrapGossip, when set, wraps the gossip transport (the demo cuts
	// sites apart with it).
	WrapGossip func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// WrapPeerConn, when set, wraps every peer channel connection, and
	// features' own gossip pools get WrapGossip too (the demo's cuts).
	WrapPeerConn func(net.Conn) net.Conn
	// NoSocket skips the Unix socket (the demo talks in-process).
	NoSocket bool
	// Features add verbs and status beyond membership and flags.
	Features []FeatureFunc
}

// Agent is a running ha-agent.
type Agent struct {
	cfg    *config.Config
	opts   Options
	logger *log.Logger
	slog   *slog.Logger // the same log for features that use slog
	keys   [][]byte

	pool    *membership.Pool // set once in New; see poolReady
	api     *localapi.Server
	peerLn  *peer.Server
	dialer  *peer.Dialer
	audit   *audit.Log
	hist    *history.Store
	metrics *metrics.Server // nil unless [metrics] enabled
	alerts  *alert.Sender   // nil without [alerts] targets
	flags   *flagStore
	events  *eventLog
	peers   *peerReports
	join    *joiner // nil until the pool is up

	// fmu guards features and verbs: peers may ask for a report while
	// features are still starting.
	fmu      sync.RWMutex
	features []Feature
	verbs    map[string]verbEntry

	// poolReady is set when pool is assigned: Serf calls onMember from
	// its own goroutine before New has stored the pool.
	poolReady atomic.Bool

	mu     sync.Mutex
	closed bool
	change time.Time // last membership or flag change
}

// New starts an agent: loads its flags, starts gossip and the peer
// listener, opens the socket, and joins the configured peers (in the
// background, retried until one answers: the peers may start later).
func New(cfg *config.Config, o Options) (a *Agent, err error) {
	logger := o.Logger
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	keys, err := cfg.LoadKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && !o.Insecure {
		return nil, membership.ErrNoKey
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	a = &Agent{cfg: cfg, opts: o, logger: logger, keys: keys, events: newEventLog(500), change: time.Now()}
	a.slog = slog.New(slog.NewTextHandler(logger.Writer(), nil)).With("node", cfg.Node)
	started := a // a itself is nil once an error is returned
	defer func() {
		if err != nil {
			started.shutdown(false)
		}
	}()
	if a.flags, err = openFlags(filepath.Join(cfg.StateDir, "flags.json")); err != nil {
		return nil, err
	}
	if a.audit, err = audit.Open(filepath.Join(cfg.StateDir, "audit.log")); err != nil {
		return nil, err
	}
	if a.hist, err = history.Open(filepath.Join(cfg.StateDir, "history"), 0); err != nil {
		return nil, err
	}
	if cfg.Alerts.Configured() {
		acfg, err := alert.FromConfig(cfg)
		if err != nil {
			return nil, err
		}
		if a.alerts, err = alert.New(acfg, a.slog); err != nil {
			return nil, fmt.Errorf("starting alerts: %w", err)
		}
	}
	a.api = localapi.New(a, logger)
	if err := a.api.SetOperators(cfg.Socket.Operators); err != nil {
		return nil, err
	}
	a.peers = newPeerReports(a)
	a.verbs = map[string]verbEntry{}
	if err := a.addFeature(flagFeature{a}); err != nil {
		return nil, err
	}

	peerAddr := cfg.Peer.Advertise
	if len(keys) > 0 {
		wrap := peer.WithConnWrapper(o.WrapPeerConn)
		if a.peerLn, err = peer.Listen(cfg.Peer.Bind, keys, func(c net.Conn) {
			a.api.ServeConn(c, localapi.Caller{Transport: "peer"})
		}, wrap); err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(cfg.Peer.Bind)
		if a.dialer, err = peer.NewDialer(keys, wrap, peer.WithSourceIP(net.ParseIP(host))); err != nil {
			return nil, err
		}
		if peerAddr == "" {
			peerAddr = a.peerLn.Addr().String()
		}
	} else {
		logger.Printf("warning: no gossip key: forwarding to other agents is off")
	}

	g := cfg.Gossip
	a.pool, err = membership.Start(membership.Options{
		Name:          cfg.Node,
		BindAddr:      g.Bind,
		AdvertiseAddr: g.Advertise,
		Keys:          keys,
		Insecure:      o.Insecure,
		Tags:          a.tags(peerAddr),
		Timings: membership.Timings{
			ProbeInterval: g.ProbeInterval.Duration, ProbeTimeout: g.ProbeTimeout.Duration,
			GossipInterval: g.GossipInterval.Duration, SuspicionMult: g.SuspicionMult,
			ReconnectInterval: g.ReconnectInterval.Duration, TCPTimeout: g.TCPTimeout.Duration,
		},
		Logger:        logger,
		OnChange:      a.onMember,
		WrapTransport: o.WrapGossip,
	})
	if err != nil {
		return nil, err
	}
	a.join = newJoiner(a) // before anything can ask for a report
	a.poolReady.Store(true)
	a.peers.reconcile(a.members())

	// Features start once the pool and the peer channel exist: failover
	// watches the pool and runs its raft log over the peer channel.
	for _, mk := range o.Features {
		f, err := mk(a)
		if err != nil {
			return nil, fmt.Errorf("starting agent feature: %w", err)
		}
		if err := a.addFeature(f); err != nil {
			f.Close()
			return nil, err
		}
	}

	if cfg.Metrics.Enabled {
		if a.metrics, err = metrics.Serve(cfg.Metrics.Listen, cfg.Node, localapi.AgentVersion, a.Deployment); err != nil {
			return nil, err
		}
	}
	if !o.NoSocket {
		ln, err := localapi.ListenUnix(cfg.Socket.Path, cfg.Socket.Group)
		if err != nil {
			return nil, err
		}
		go a.api.Serve(ln, "unix")
	}
	// Joining is retried in the background: at a site's cold start the
	// node this one joins may boot later.
	a.join.start()
	a.record(protocol.Event{Node: cfg.Node, Kind: "agent", Severity: protocol.SevInfo,
		Message: fmt.Sprintf("agent started on %s (%s)", cfg.Node, a.flags.describe())})
	return a, nil
}

func (a *Agent) tags(peerAddr string) map[string]string {
	t := map[string]string{
		tagDeployment: a.cfg.Deployment,
		tagSite:       a.cfg.Site,
		tagCluster:    a.cfg.Cluster,
		tagVersion:    localapi.AgentVersion,
	}
	if a.cfg.Role != "" {
		t[tagRole] = a.cfg.Role
	}
	if peerAddr != "" {
		t[tagPeer] = peerAddr
	}
	f := a.flags.get()
	if f.Standby {
		t[tagStandby] = "1"
	}
	if f.Maintenance {
		t[tagMaint] = "1"
	}
	return t
}

// Join asks the pool to contact more peers.
func (a *Agent) Join(addrs []string) error {
	_, err := a.pool.Join(addrs)
	return err
}

// GossipAddr returns host:port where peers can join this agent.
func (a *Agent) GossipAddr() string { return a.pool.Addr() }

// Name returns this node's name.
func (a *Agent) Name() string { return a.cfg.Node }

// Config returns the agent's configuration.
func (a *Agent) Config() *config.Config { return a.cfg }

// ServeConn runs a protocol session on c as if it came through the local
// socket; the demo uses it with in-process pipes.
func (a *Agent) ServeConn(c net.Conn, user string) {
	a.api.ServeConn(c, localapi.Caller{User: user, Transport: "pipe"})
}

// Close leaves the pool gracefully and stops the agent.
func (a *Agent) Close() error { return a.shutdown(true) }

// Kill stops the agent without telling anyone, as a crash would.
func (a *Agent) Kill() error { return a.shutdown(false) }

func (a *Agent) shutdown(leave bool) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	var errs []error
	if a.join != nil {
		a.join.close()
	}
	if a.peers != nil {
		a.peers.close()
	}
	closeNet := func() {
		// Closing the connections ends every write stuck on a dead peer,
		// so nothing below waits for TCP to give up.
		if a.peerLn != nil {
			errs = append(errs, a.peerLn.Close())
		}
		if a.dialer != nil {
			a.dialer.Close()
		}
	}
	if !leave {
		closeNet() // a crash: nobody is told anything
	}
	// Features stop in reverse order of starting; on a graceful stop they
	// may still talk to their peers.
	for _, f := range slices.Backward(a.allFeatures()) {
		errs = append(errs, f.Close())
	}
	if leave {
		closeNet()
	}
	if a.metrics != nil {
		errs = append(errs, a.metrics.Close())
	}
	if a.api != nil {
		a.api.Close()
		os.Remove(a.cfg.Socket.Path)
	}
	if a.pool != nil {
		if leave {
			errs = append(errs, a.pool.Leave())
		} else {
			errs = append(errs, a.pool.Shutdown())
		}
	}
	if a.alerts != nil {
		errs = append(errs, a.alerts.Close())
	}
	if a.audit != nil {
		errs = append(errs, a.audit.Close())
	}
	if a.hist != nil {
		errs = append(errs, a.hist.Close())
	}
	return errors.Join(errs...)
}

// onMember turns a membership change into an event.
func (a *Agent) onMember(c membership.Change) {
	if c.Member.Tags[tagDeployment] != a.cfg.Deployment {
		return
	}
	sev := protocol.SevInfo
	var msg string
	switch c.Kind {
	case "join":
		msg = fmt.Sprintf("%s joined", c.Member.Name)
	case "failed":
		sev = protocol.SevCritical
		msg = fmt.Sprintf("%s failed: no answer on the cluster network", c.Member.Name)
	case "leave":
		sev = protocol.SevWarning
		msg = fmt.Sprintf("%s left the cluster", c.Member.Name)
	case "update":
		msg = fmt.Sprintf("%s updated (%s)", c.Member.Name, flagWords(c.Member.Tags))
	case "reap":
		msg = fmt.Sprintf("%s removed after a long absence", c.Member.Name)
	default:
		return
	}
	a.mu.Lock()
	a.change = time.Now()
	a.mu.Unlock()
	a.record(protocol.Event{Node: c.Member.Name, Kind: "member", Severity: sev, Message: msg})
	if a.poolReady.Load() {
		a.peers.reconcile(a.members())
	}
}

// verbEntry is a verb and the feature that carries it out.
type verbEntry struct {
	verb Verb
	f    Feature
}

func (a *Agent) addFeature(f Feature) error {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	for _, v := range f.Verbs() {
		if old, dup := a.verbs[v.Name]; dup {
			if _, builtin := old.f.(flagFeature); !builtin {
				return fmt.Errorf("two agent features claim the verb %q", v.Name)
			}
			// A feature may take a node verb over from the built-in
			// flags (local failover moves groups on standby).
		}
		a.verbs[v.Name] = verbEntry{v, f}
	}
	a.features = append(a.features, f)
	return nil
}

func (a *Agent) allFeatures() []Feature {
	a.fmu.RLock()
	defer a.fmu.RUnlock()
	return slices.Clone(a.features)
}

func (a *Agent) verb(name string) (verbEntry, bool) {
	a.fmu.RLock()
	defer a.fmu.RUnlock()
	e, ok := a.verbs[name]
	return e, ok
}

func flagWords(tags map[string]string) string {
	switch {
	case tags[tagMaint] == "1" && tags[tagStandby] == "1":
		return "standby, maintenance"
	case tags[tagMaint] == "1":
		return "maintenance"
	case tags[tagStandby] == "1":
		return "standby"
	}
	return "online"
}

// record adds an event and wakes the watchers.
func (a *Agent) record(e protocol.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if !e.Relayed {
		// The journal gets every event this node saw first hand.
		a.logger.Printf("%s %s %s: %s", e.Severity, e.Kind, e.Node, e.Message)
	}
	a.events.add(e)
	if err := a.hist.Append(e); err != nil {
		a.logger.Printf("history: %v (events are still shown live)", err)
	}
}

// Identity implements localapi.Backend.
func (a *Agent) Identity() (string, string) { return a.cfg.Node, a.cfg.Deployment }

// EventsSince implements localapi.Backend.
func (a *Agent) EventsSince(seq uint64) ([]protocol.Event, uint64) { return a.events.since(seq) }

// Subscribe implements localapi.Backend.
func (a *Agent) Subscribe() (<-chan struct{}, func()) { return a.events.subscribe() }

// forwardConn opens a protocol session with another node's agent.
func (a *Agent) forwardConn(ctx context.Context, m membership.Member, c localapi.Caller) (*clientConn, error) {
	if c.Forwarded != "" {
		// One hop only: if our view sends us elsewhere, the views
		// disagree, and a loop must not hide that.
		return nil, protocol.Errorf(protocol.CodeUnreachable, "retry in a moment, or ask the node's own agent",
			"%s forwarded a request about %s here, but this agent is not %s", c.Forwarded, m.Name, m.Name)
	}
	if a.dialer == nil {
		return nil, protocol.Errorf(protocol.CodeUnreachable, "configure gossip keys on every node to enable forwarding",
			"forwarding to %s is off: this agent runs without a gossip key", m.Name)
	}
	if m.Status != protocol.MemberAlive {
		return nil, protocol.Errorf(protocol.CodeUnreachable, "check the node's power and network, or fence it",
			"%s is %s (since %s)", m.Name, m.Status, m.Since.Format(time.TimeOnly))
	}
	addr := m.Tags[tagPeer]
	if addr == "" {
		return nil, protocol.Errorf(protocol.CodeUnreachable, "upgrade or configure the node's agent with a gossip key",
			"%s's agent does not accept forwarded requests", m.Name)
	}
	return dialPeer(ctx, a.dialer, addr, a.cfg.Node, c.User, c.Role)
}
