package geosite

import (
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

// Tags of the geo pool. The pool is the deployment's only WAN gossip, so
// it carries just what reachability needs.
const (
	tagDeployment = "dep"
	tagSite       = "site"
	tagGeo        = "geo" // "voter" or "arbitrator"
)

// startPool starts the geo pool and keeps joining until it has a peer.
func (f *Feature) startPool(keys [][]byte, self config.GeoVoter) error {
	c := f.h.Config()
	g := f.cfg
	kind := "voter"
	if self.Arbitrator {
		kind = "arbitrator"
	}
	p, err := membership.Start(membership.Options{
		Name:          c.Node,
		BindAddr:      g.Bind,
		AdvertiseAddr: g.Advertise,
		Keys:          keys,
		Tags:          map[string]string{tagDeployment: c.Deployment, tagSite: c.Site, tagGeo: kind},
		Timings: membership.Timings{
			ProbeInterval: g.ProbeInterval.Duration, ProbeTimeout: g.ProbeTimeout.Duration,
			GossipInterval: g.GossipInterval.Duration, SuspicionMult: g.SuspicionMult,
			ReconnectInterval: g.ReconnectInterval.Duration, TCPTimeout: g.TCPTimeout.Duration,
		},
		Logger:        log.New(slogWriter{f.log.With("pool", "geo")}, "", 0),
		WrapTransport: f.h.WrapGossip(), // the demo's cuts
		OnChange: func(ch membership.Change) {
			if ch.Member.Tags[tagDeployment] != c.Deployment || ch.Kind == "update" {
				return
			}
			f.log.Info("geo pool", "member", ch.Member.Name, "site", ch.Member.Tags[tagSite], "change", ch.Kind)
			f.h.Changed()
		},
	})
	if err != nil {
		return err
	}
	f.pool = p
	if len(g.Join) > 0 {
		f.wg.Add(1)
		go f.joinLoop(g.Join)
	}
	return nil
}

// joinLoop joins the configured geo peers, and again whenever this agent
// has none alive: at start the other sites may not be up yet, and Serf's
// own reconnection only retries members it has met.
func (f *Feature) joinLoop(addrs []string) {
	defer f.wg.Done()
	every := max(f.cfg.ReconnectInterval.Duration, time.Second)
	for {
		if f.alivePeers() == 0 {
			if _, err := f.pool.Join(addrs); err != nil {
				f.log.Debug("geo pool: join failed; retrying", "error", err)
			}
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// members returns the geo pool's members of this deployment.
func (f *Feature) members() []membership.Member {
	if f.pool == nil {
		return nil
	}
	dep := f.h.Config().Deployment
	var out []membership.Member
	for _, m := range f.pool.Members() {
		if m.Tags[tagDeployment] == dep {
			out = append(out, m)
		}
	}
	return out
}

func (f *Feature) alivePeers() int {
	n := 0
	for _, m := range f.members() {
		if m.Name != f.node && m.Status == protocol.MemberAlive {
			n++
		}
	}
	return n
}

// reachable is the geo library's view of the sites: a site is reachable
// when any of its geo agents is alive in the geo pool.
func (f *Feature) reachable() map[string]bool {
	out := map[string]bool{f.h.Config().Site: true}
	for _, m := range f.members() {
		if m.Status == protocol.MemberAlive {
			out[m.Tags[tagSite]] = true
		}
	}
	return out
}

// links is this agent's view of the other geo voters, as heartbeat links.
func (f *Feature) links() []protocol.Link {
	var out []protocol.Link
	for _, m := range f.members() {
		if m.Name == f.node {
			continue
		}
		l := protocol.Link{Peer: m.Name, Path: LinkPath, Up: m.Status == protocol.MemberAlive,
			Detail: "geo pool (WAN) to site " + m.Tags[tagSite]}
		if !l.Up {
			l.Detail += ": " + string(m.Status) + " since " + m.Since.UTC().Format(time.RFC3339)
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		// Still mark this node as a geo voter for routing.
		out = append(out, protocol.Link{Peer: f.node, Path: LinkPath, Up: false, Detail: "geo pool: no other geo voter seen yet"})
	}
	return out
}

// slogWriter turns Serf's log lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	line := string(trimNL(b))
	if strings.Contains(line, "[ERR]") {
		w.l.Warn(line)
	} else {
		w.l.Debug(line)
	}
	return len(b), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
