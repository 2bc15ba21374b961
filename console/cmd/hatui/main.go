// Command hatui is the operator's console for hatui deployments.
//
//	hatui [flags] [user@]host[:port]     live screen through the node's sshd
//	hatui [flags]                        the agent on this node (its Unix socket)
//	hatui --demo                         a whole fake deployment on this machine
//	hatui --exec 'VERB ARGS' [--json]    one verb without a terminal
//
// Exit codes with --exec: 0 success, 1 failed, 2 refused or usage,
// 3 unreachable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/hatui/hatui/console/cli"
	"github.com/hatui/hatui/console/session"
	"github.com/hatui/hatui/console/sshdial"
	"github.com/hatui/hatui/console/tui"
	"github.com/hatui/hatui/console/verb"
	"github.com/hatui/hatui/demo"
	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

const version = "0.1.0"

type flags struct {
	exec, socket, identity, jump, knownHosts, sshConfig string
	entry, deployments                                  string
	targets                                             []string
	json, demo, readOnly, noColor, yes                  bool
	timeout                                             time.Duration
	target                                              string
}

func main() { os.Exit(run(os.Args[1:])) }

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("hatui", flag.ContinueOnError)
	fs.StringVar(&f.exec, "exec", "", "run one `verb` (e.g. 'status', 'standby pbx-a2') without a terminal, then exit")
	fs.BoolVar(&f.json, "json", false, "with --exec: print stable JSON")
	fs.BoolVar(&f.yes, "yes", false, "with --exec: confirm an irreversible verb (promote, reseed, fence, geo confirm, power off)")
	fs.BoolVar(&f.demo, "demo", false, "start a whole fake deployment on this machine and connect to it")
	fs.StringVar(&f.entry, "entry", "", "with --demo: the demo `node` to connect through (default its first)")
	fs.StringVar(&f.deployments, "deployments", "", "the overview of several deployments: with --demo a `count` of demo deployments; else a file of named deployments (default ~/.config/hatui/deployments.toml when no target is given and it exists)")
	fs.BoolVar(&f.readOnly, "read-only", false, "remove every action: look, never touch")
	fs.BoolVar(&f.noColor, "no-color", false, "no colour (NO_COLOR is honoured too)")
	fs.StringVar(&f.socket, "socket", sshdial.DefaultSocketPath, "the agent's Unix socket `path` on the node")
	fs.StringVar(&f.identity, "i", "", "SSH identity `file`, tried first")
	fs.StringVar(&f.jump, "J", "", "SSH ProxyJump `hosts`, like ssh -J")
	fs.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts `file` to use instead of the user's and the system's")
	fs.StringVar(&f.sshConfig, "ssh-config", "", "ssh_config `file` to read instead of ~/.ssh/config")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "with --exec: how long to wait for an answer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: hatui [flags] [[user@]host[:port]]\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\n--exec exit codes: 0 success, 1 failed, 2 refused or usage, 3 unreachable\n")
	}
	// Flags may follow the target, as operators type them.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(rest) > 1 && f.exec != "":
		return nil, fmt.Errorf("--exec takes one target, got %q", rest)
	case len(rest) > 1:
		f.targets = rest // the overview: one deployment per target
	case len(rest) == 1 && rest[0] == "version":
		f.exec = "version"
	case len(rest) == 1:
		f.target = rest[0]
	}
	if f.demo && (f.target != "" || len(f.targets) > 0) {
		return nil, errors.New("--demo runs its own deployment: leave out the target")
	}
	if f.entry != "" && !f.demo {
		return nil, errors.New("--entry chooses the demo node to connect through: use it with --demo, or name the node as the target")
	}
	return f, nil
}

func run(args []string) int {
	f, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "hatui:", err)
		return cli.ExitRefused
	}
	if f.exec == "version" {
		fmt.Println("hatui", version)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if list, err := overviewList(f); err != nil {
		fmt.Fprintln(os.Stderr, "hatui:", err)
		return cli.ExitCode(err)
	} else if list != nil {
		if err := runOverview(ctx, f, list); err != nil {
			fmt.Fprintln(os.Stderr, "hatui:", err)
			return 1
		}
		return 0
	}
	conn, err := connection(ctx, f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hatui:", err)
		return cli.ExitCode(err)
	}
	defer conn.close()
	if f.exec != "" {
		return runExec(ctx, f, conn)
	}
	if err := runTUI(ctx, f, conn); err != nil {
		fmt.Fprintln(os.Stderr, "hatui:", err)
		return 1
	}
	return 0
}

// conn says how to reach the deployment.
type conn struct {
	entry     string
	fallbacks []session.Entry
	dial      client.DialFunc
	resolve   func(protocol.Node) (client.DialFunc, bool)
	demo      *demo.Deployment
	close     func()
}

func who() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

func connection(ctx context.Context, f *flags) (*conn, error) {
	switch {
	case f.demo:
		if f.exec == "" {
			fmt.Fprintln(os.Stderr, "hatui: starting the demo deployment (two sites of two PBX nodes and an arbitrator, real Serf on loopback)...")
		}
		if f.entry != "" && !strings.Contains(", "+demoNodes()+", ", ", "+f.entry+", ") {
			return nil, &protocol.Error{Code: protocol.CodeUnknownNode, Message: fmt.Sprintf("no demo node named %q", f.entry), Hint: "the demo's nodes: " + demoNodes()}
		}
		d, err := demo.Start(demo.Options{})
		if err != nil {
			return nil, err
		}
		return demoConn(d, f.entry), nil
	case f.target == "":
		return &conn{entry: "local agent", dial: client.UnixDialer(f.socket), close: func() {}}, nil
	}
	opts := sshOptions(f)
	// Under --exec nobody can answer a question: unknown hosts are refused.
	if f.exec == "" {
		opts.AskUnknown = sshdial.TerminalAsk(os.Stdin, os.Stderr)
	}
	c, d, err := sshConn(f.target, opts)
	if err != nil {
		return nil, err
	}
	// Log in now, before any screen is drawn, so that host key and
	// passphrase questions are asked on a plain terminal and a refusal
	// comes with ssh's own reason.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.Connect(cctx); err != nil {
		c.close()
		return nil, sshError(err)
	}
	return c, nil
}

// sshOptions are the SSH options the flags give.
func sshOptions(f *flags) sshdial.Options {
	opts := sshdial.Options{SocketPath: f.socket, ProxyJump: f.jump}
	if f.identity != "" {
		opts.IdentityFiles = []string{f.identity}
	}
	if f.knownHosts != "" {
		opts.KnownHostsFiles = []string{f.knownHosts}
	}
	if f.sshConfig != "" {
		opts.ConfigFiles = []string{f.sshConfig}
	}
	return opts
}

// sshConn is the way to a deployment through target's sshd, logging in
// when first dialled, and to its other members through theirs.
func sshConn(target string, opts sshdial.Options) (*conn, *sshdial.Dialer, error) {
	d, err := sshdial.New(target, opts)
	if err != nil {
		return nil, nil, sshError(err)
	}
	t, _ := sshdial.ParseTarget(target)
	dialers := map[string]*sshdial.Dialer{}
	var dialersMu sync.Mutex // the session's site watches resolve at once
	c := &conn{entry: target, dial: d.Dial, close: func() {
		dialersMu.Lock()
		defer dialersMu.Unlock()
		d.Close()
		for _, o := range dialers {
			o.Close()
		}
	}}
	// Another member is reached through its own sshd at the address it
	// gossips from, as the same user and port, with the same keys.
	c.resolve = func(n protocol.Node) (client.DialFunc, bool) {
		dialersMu.Lock()
		defer dialersMu.Unlock()
		host, _, err := net.SplitHostPort(n.Addr)
		if err != nil {
			return nil, false
		}
		tgt := host
		if t.User != "" {
			tgt = t.User + "@" + host
		}
		if t.Port != 0 {
			tgt = net.JoinHostPort(host, strconv.Itoa(t.Port))
			if t.User != "" {
				tgt = t.User + "@" + tgt
			}
		}
		if o, ok := dialers[tgt]; ok {
			return o.Dial, true
		}
		nd, err := d.For(tgt)
		if err != nil {
			return nil, false
		}
		dialers[tgt] = nd
		return nd.Dial, true
	}
	return c, d, nil
}

// sshError gives an SSH failure the protocol code that sets the exit
// status: a config mistake is a usage error, anything else unreachable.
func sshError(err error) error {
	var se *sshdial.Error
	if !errors.As(err, &se) {
		return err
	}
	code := protocol.CodeUnreachable
	if se.Kind == sshdial.KindConfig {
		code = protocol.CodeUsage
	}
	return &protocol.Error{Code: code, Message: se.Error()}
}

// backend routes demo verbs to the demo and everything else to an agent.
type backend struct {
	demo    *demo.Deployment
	do      func(context.Context, protocol.Action, func(protocol.Progress)) (protocol.Result, error)
	history func(context.Context, protocol.HistoryRequest) (*protocol.History, error)
}

// History reads the deployment's history from an agent.
func (b backend) History(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
	if b.history == nil {
		return nil, &protocol.Error{Code: protocol.CodeRefused, Message: "this console cannot read history"}
	}
	return b.history(ctx, req)
}

func (b backend) Do(ctx context.Context, a protocol.Action, progress func(protocol.Progress)) (protocol.Result, error) {
	if b.demo != nil {
		if res, handled, err := b.demo.Do(a); handled {
			return res, err
		}
	}
	return b.do(ctx, a, progress)
}

func runExec(ctx context.Context, f *flags, c *conn) int {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if c.demo != nil {
		if err := c.demo.WaitConverged(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "hatui:", err)
			return cli.ExitUnreachable
		}
	}
	ac, err := client.Connect(ctx, c.dial, client.Options{Client: "hatui/" + version, User: who()})
	if err != nil {
		if w := strings.Fields(f.exec); len(w) > 0 && w[0] == "check" {
			// A monitoring system wants its UNKNOWN line, not an error.
			return cli.CheckUnreachable(os.Stdout, fmt.Errorf("reaching %s: %w", c.entry, err))
		}
		r := &cli.Runner{JSON: f.json, Out: os.Stdout, Err: os.Stderr}
		return r.Fail(fmt.Errorf("reaching %s: %w", c.entry, err))
	}
	defer ac.Close()
	// Status and geo decisions look through a node of every site, so a
	// script on the far side of a partition sees both sides and its
	// confirm reaches the side that can carry it out.
	views := session.NewViews(ac, c.resolve, client.Options{Client: "hatui/" + version, User: who()}, 3*time.Second)
	defer views.Close()
	r := &cli.Runner{
		Table:   verb.New(verb.Options{Demo: c.demo != nil, ReadOnly: f.readOnly}),
		JSON:    f.json,
		Yes:     f.yes,
		Out:     os.Stdout,
		Err:     os.Stderr,
		Do:      backend{demo: c.demo, do: views.Do}.Do,
		Status:  views.Status,
		History: ac.History,
	}
	return r.Run(ctx, f.exec)
}

func runTUI(ctx context.Context, f *flags, c *conn) error {
	var s *session.Session
	model := tui.New(tui.Options{
		ReadOnly: f.readOnly,
		Demo:     c.demo != nil,
		NoColor:  f.noColor,
		Backend: backend{demo: c.demo, do: func(ctx context.Context, a protocol.Action, p func(protocol.Progress)) (protocol.Result, error) {
			return s.Do(ctx, a, p)
		}, history: func(ctx context.Context, req protocol.HistoryRequest) (*protocol.History, error) {
			return s.History(ctx, req)
		}},
	})
	p := tea.NewProgram(model, tea.WithContext(ctx))
	s = session.New(session.Options{
		Entry: c.entry, EntryDial: c.dial, Resolve: c.resolve,
		Client:     client.Options{Client: "hatui/" + version, User: who()},
		OnSnapshot: func(snap *protocol.Snapshot) { p.Send(tui.SnapshotMsg{Snapshot: snap}) },
		OnChange:   func(ch protocol.Change) { p.Send(tui.ChangeMsg{Change: ch}) },
		OnConn: func(cs session.ConnState) {
			p.Send(tui.ConnMsg{Via: cs.Via, Connected: cs.Connected, Note: cs.Note})
		},
	})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Run(sctx)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// demoNodes lists the demo's node names for a hint.
func demoNodes() string {
	var names []string
	for _, n := range demo.Layout {
		names = append(names, n.Node)
	}
	return strings.Join(names, ", ")
}

// demoConn is the way into a running demo through entry (its first node
// when empty); the other nodes are dialled in process.
func demoConn(d *demo.Deployment, entry string) *conn {
	if entry == "" {
		entry = demo.Layout[0].Node
	}
	return &conn{
		entry: entry, dial: d.Dial(entry), demo: d, close: d.Close,
		resolve: func(n protocol.Node) (client.DialFunc, bool) { return d.Dial(n.Name), true },
	}
}
