package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	tea "charm.land/bubbletea/v2"
	"github.com/BurntSushi/toml"

	"github.com/hatui/hatui/console/session"
	"github.com/hatui/hatui/console/tui"
	"github.com/hatui/hatui/demo"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

// deploymentsFile is the NOC's list of deployments:
//
//	[[deployment]]
//	name = "silhouette-07"
//	entries = ["ops@pbx-a1.s07.example", "ops@arb.s07.example"]
type deploymentsFile struct {
	Deployment []struct {
		Name    string   `toml:"name"`
		Entries []string `toml:"entries"`
	} `toml:"deployment"`
}

// listed is one deployment of the overview before it is connected.
type listed struct {
	name    string
	entries []string // SSH targets, the first tried first
	demo    bool
}

// overviewList says whether the console runs the overview and of what:
// several targets, a deployments file, or --demo --deployments N. nil
// means the one-deployment screen.
func overviewList(f *flags) ([]listed, error) {
	if f.exec != "" {
		if f.deployments != "" {
			return nil, &protocol.Error{Code: protocol.CodeUsage, Message: "--exec works on one deployment: leave out --deployments"}
		}
		return nil, nil
	}
	if f.demo {
		if f.deployments == "" {
			return nil, nil
		}
		n, err := strconv.Atoi(f.deployments)
		if err != nil || n < 1 || n > 50 {
			return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("--demo --deployments %q: a count from 1 to 50", f.deployments)}
		}
		var out []listed
		for i := 1; i <= n; i++ {
			out = append(out, listed{name: fmt.Sprintf("demo-%d", i), demo: true})
		}
		return out, nil
	}
	if len(f.targets) > 0 {
		var out []listed
		for _, t := range f.targets {
			out = append(out, listed{name: t, entries: []string{t}})
		}
		return out, nil
	}
	path := f.deployments
	if path == "" {
		if f.target != "" {
			return nil, nil
		}
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, nil
		}
		path = filepath.Join(dir, "hatui", "deployments.toml")
		if _, err := os.Stat(path); err != nil {
			return nil, nil // no file: the local agent, as always
		}
	}
	return readDeployments(path)
}

// readDeployments reads a deployments file, saying what is wrong with it.
func readDeployments(path string) ([]listed, error) {
	var df deploymentsFile
	md, err := toml.DecodeFile(path, &df)
	if err != nil {
		return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("reading %s: %v", path, err),
			Hint: `each deployment is [[deployment]] with name = "..." and entries = ["user@host", ...]`}
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("%s: unknown key %s", path, u[0]),
			Hint: "a deployment has name and entries only"}
	}
	var out []listed
	seen := map[string]bool{}
	for i, d := range df.Deployment {
		switch {
		case d.Name == "":
			return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("%s: deployment %d has no name", path, i+1)}
		case seen[d.Name]:
			return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("%s: deployment %q is listed twice", path, d.Name)}
		case len(d.Entries) == 0:
			return nil, &protocol.Error{Code: protocol.CodeUsage, Message: fmt.Sprintf("%s: deployment %q has no entries", path, d.Name),
				Hint: `entries = ["ops@pbx-a1", "ops@arbitrator"]: the first is tried first`}
		}
		seen[d.Name] = true
		out = append(out, listed{name: d.Name, entries: d.Entries})
	}
	if len(out) == 0 {
		return nil, &protocol.Error{Code: protocol.CodeUsage, Message: path + " lists no deployment"}
	}
	return out, nil
}

// runOverview watches every listed deployment, each through its own
// session, and runs the overview screen.
func runOverview(ctx context.Context, f *flags, list []listed) error {
	conns := make([]*conn, len(list))
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if list[0].demo {
		fmt.Fprintf(os.Stderr, "hatui: starting %d demo deployments...\n", len(list))
		var wg sync.WaitGroup
		errs := make([]error, len(list))
		for i, l := range list {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, err := demo.Start(demo.Options{Name: l.name, NoDatabase: true})
				if err != nil {
					errs[i] = err
					return
				}
				conns[i] = demoConn(d, f.entry)
			}()
		}
		wg.Wait()
		for _, c := range conns {
			if c != nil {
				closers = append(closers, c.close)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	} else {
		opts := sshOptions(f)
		for i, l := range list {
			c, _, err := sshConn(l.entries[0], opts)
			if err != nil {
				return fmt.Errorf("deployment %s: %w", l.name, err)
			}
			closers = append(closers, c.close)
			for _, e := range l.entries[1:] {
				fc, _, err := sshConn(e, opts)
				if err != nil {
					return fmt.Errorf("deployment %s: %w", l.name, err)
				}
				closers = append(closers, fc.close)
				c.fallbacks = append(c.fallbacks, session.Entry{Name: e, Dial: fc.dial})
			}
			conns[i] = c
		}
	}
	names := make([]string, len(list))
	backends := make([]tui.Backend, len(list))
	sessions := make([]*session.Session, len(list))
	for i, l := range list {
		names[i] = l.name
		s := &sessions[i]
		backends[i] = backend{demo: conns[i].demo,
			do: func(ctx context.Context, a protocol.Action, p func(protocol.Progress)) (protocol.Result, error) {
				return (*s).Do(ctx, a, p)
			},
			history: func(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
				return (*s).History(ctx, req)
			}}
	}
	ov := tui.NewOverview(tui.Options{ReadOnly: f.readOnly, Demo: list[0].demo, NoColor: f.noColor}, names, backends)
	p := tea.NewProgram(ov, tea.WithContext(ctx))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, c := range conns {
		send := func(m tea.Msg) { p.Send(tui.DeploymentMsg{Index: i, Msg: m}) }
		sessions[i] = session.New(session.Options{
			Entry: c.entry, EntryDial: c.dial, Resolve: c.resolve, Fallbacks: c.fallbacks,
			Client:     client.Options{Client: "hatui/" + version, User: who()},
			OnSnapshot: func(snap *protocol.Snapshot) { send(tui.SnapshotMsg{Snapshot: snap}) },
			OnChange:   func(ch protocol.Change) { send(tui.ChangeMsg{Change: ch}) },
			OnConn: func(cs session.ConnState) {
				send(tui.ConnMsg{Via: cs.Via, Connected: cs.Connected, Note: cs.Note})
			},
		})
		go sessions[i].Run(sctx)
	}
	if list[0].demo && len(list) > 1 {
		// One demo starts with a geo failover pending, as the NOC would
		// find it: its site a cut until site b bids, then healed.
		go pendingAtStart(sctx, conns[1].demo)
	}
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// pendingAtStart cuts site a of d until a geo failover to b is pending,
// then heals it: the failover stays pending on its dead man's timer.
func pendingAtStart(ctx context.Context, d *demo.Deployment) {
	if _, _, err := d.Do(protocol.Action{Verb: "demo cut", Args: []string{"a"}}); err != nil {
		return
	}
	defer d.Do(protocol.Action{Verb: "demo heal", Args: []string{"a"}})
	c, err := client.Connect(ctx, d.Dial("pbx-b1"), client.Options{Client: "hatui/" + version})
	if err != nil {
		return
	}
	defer c.Close()
	snap, changes, err := c.Watch(ctx)
	for err == nil {
		if snap != nil && snap.Geo != nil && snap.Geo.Pending != nil && strings.EqualFold(snap.Geo.Pending.State, "pending") {
			return
		}
		ch, ok := <-changes
		if !ok {
			return
		}
		snap = ch.Snapshot
	}
}
