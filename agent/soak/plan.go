package soak

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a kind of fault.
type Kind string

// The faults the planner draws from.
const (
	// Crash kills a node as a power loss would: the agent with kill -9,
	// its service with it, its links down; healed by a reboot (links up,
	// agent started).
	Crash Kind = "crash"
	// Kill9 kills only the agent with kill -9 and starts it again at
	// once (its service keeps running meanwhile): the raft logs reopen
	// after a kill in the middle of whatever they were writing.
	Kill9 Kind = "kill9"
	// Isolate cuts every link of a node while its agent runs.
	Isolate Kind = "isolate"
	// CutPair cuts the two PBX nodes of a site from each other.
	CutPair Kind = "cut-pair"
	// CutSite cuts a site off the WAN (its nodes still see each other).
	CutSite Kind = "cut-site"
	// RestartAll restarts every agent at once (SIGTERM, then start).
	RestartAll Kind = "restart-all"
	// Standby puts a node in standby, and online again when healed.
	Standby Kind = "standby"
)

// Weights is how often each kind is drawn, relative to the others.
var Weights = map[Kind]int{
	Crash:      3,
	Kill9:      4,
	Isolate:    2,
	CutPair:    2,
	CutSite:    2,
	RestartAll: 1,
	Standby:    2,
}

// kinds in a fixed order, so that a seed always draws the same.
var kinds = []Kind{Crash, Kill9, Isolate, CutPair, CutSite, RestartAll, Standby}

// Fault is one fault of a plan.
type Fault struct {
	Kind Kind
	// Target is a node (crash, kill9, isolate, standby) or a site
	// (cut-pair, cut-site); empty for restart-all.
	Target string
	// At is when it starts, from the start of the soak; For how long it
	// lasts until it is healed (zero for kill9 and restart-all).
	At, For time.Duration
}

func (f Fault) String() string {
	s := fmt.Sprintf("%7.1fs %s", f.At.Seconds(), f.Kind)
	if f.Target != "" {
		s += " " + f.Target
	}
	if f.For > 0 {
		s += fmt.Sprintf(" for %.1fs", f.For.Seconds())
	}
	return s
}

// Topology is what a plan's faults may target.
type Topology struct {
	// Nodes are the PBX nodes (they hold groups) by site.
	Nodes map[string][]string
	// Sites are the sites with a service, in order.
	Sites []string
}

// Spec shapes a plan.
type Spec struct {
	Seed     uint64
	Duration time.Duration
	// MinFault and MaxFault bound how long a fault lasts; Settle is the
	// quiet time after a heal before the next fault.
	MinFault, MaxFault, Settle time.Duration
}

// Plan draws the faults of a soak from spec.Seed: one at a time, each
// followed by a quiet time, until spec.Duration is used up. The same
// spec and topology always give the same plan.
func Plan(spec Spec, topo Topology) []Fault {
	if spec.MinFault <= 0 {
		spec.MinFault = time.Second
	}
	if spec.MaxFault < spec.MinFault {
		spec.MaxFault = spec.MinFault
	}
	r := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	total := 0
	for _, k := range kinds {
		total += Weights[k]
	}
	var nodes []string
	for _, s := range topo.Sites {
		nodes = append(nodes, topo.Nodes[s]...)
	}
	var out []Fault
	at := spec.Settle
	for at < spec.Duration {
		n := r.IntN(total)
		k := kinds[0]
		for _, kk := range kinds {
			if n < Weights[kk] {
				k = kk
				break
			}
			n -= Weights[kk]
		}
		f := Fault{Kind: k, At: at}
		switch k {
		case Crash, Kill9, Isolate, Standby:
			f.Target = nodes[r.IntN(len(nodes))]
		case CutPair, CutSite:
			f.Target = topo.Sites[r.IntN(len(topo.Sites))]
		}
		if k != Kill9 && k != RestartAll {
			f.For = spec.MinFault + time.Duration(r.Int64N(int64(spec.MaxFault-spec.MinFault)+1))
		}
		if at+f.For > spec.Duration {
			break
		}
		out = append(out, f)
		at += f.For + spec.Settle
	}
	return out
}

// Describe lists a plan, one fault a line.
func Describe(plan []Fault) string {
	var b strings.Builder
	for _, f := range plan {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	return b.String()
}
