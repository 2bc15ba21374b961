package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/enroll"
)

// addrFlags collects --addr NODE=IP.
type addrFlags map[string]string

func (a addrFlags) String() string { return "" }

func (a addrFlags) Set(v string) error {
	k, ip, ok := strings.Cut(v, "=")
	if !ok || k == "" || ip == "" {
		return fmt.Errorf("%q: write NODE=IP", v)
	}
	a[k] = ip
	return nil
}

// devFlags collects --dev NAME=PATH.
type devFlags map[string]string

func (d devFlags) String() string { return "" }

func (d devFlags) Set(v string) error {
	k, path, ok := strings.Cut(v, "=")
	if !ok || k == "" || path == "" {
		return fmt.Errorf("%q: write NAME=PATH", v)
	}
	d[k] = path
	return nil
}

// enrollCmd runs bootstrap, join and token.
func enrollCmd(verb string, args []string) int {
	fs := flag.NewFlagSet("ha-agent "+verb, flag.ContinueOnError)
	p := enroll.DefaultPaths()
	fs.StringVar(&p.Etc, "etc", p.Etc, "configuration `dir`")
	fs.StringVar(&p.State, "state", p.State, "state `dir`")
	fs.StringVar(&p.Run, "run", p.Run, "socket `dir`")
	service := fs.String("service", enroll.ServiceAuto, "install and start the agent under `systemd`, runit, none or auto")
	ttl := fs.Duration("ttl", enroll.DefaultTTL, "how long join tokens are valid")
	force := fs.Bool("force", false, "replace an existing configuration")
	recipe := fs.String("recipe", "", "the recipe's `folder` (recipes/NAME)")
	addrs := addrFlags{}
	fs.Var(addrs, "addr", "a node's address, `NODE=IP` (repeat; the recipe's example addresses otherwise)")
	p.Devices = map[string]string{}
	fs.Var(devFlags(p.Devices), "dev", "this node's path of a recipe's device, `NAME=PATH` (repeat; the recipe's paths otherwise)")
	// Flags may follow the positional argument (join TOKEN --service none).
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	bin, err := os.Executable()
	if err != nil {
		bin = "/usr/local/bin/ha-agent"
	}
	switch verb {
	case "bootstrap":
		if *recipe == "" || len(pos) != 0 {
			fmt.Fprintln(os.Stderr, "usage: ha-agent bootstrap --recipe recipes/NAME [--addr NODE=IP]... [--service auto|systemd|runit|none]")
			return 2
		}
		b, err := enroll.Bootstrap(enroll.BootstrapOptions{Recipe: *recipe, Addrs: addrs, Paths: p, TTL: *ttl, Force: *force})
		if err != nil {
			fmt.Fprintln(os.Stderr, "ha-agent:", err)
			return 1
		}
		fmt.Printf("deployment of recipe %s created on %s: %s, key in %s\n", b.Recipe.Name, b.Node, b.ConfigFile,
			filepath.Join(p.Etc, "gossip.keys"))
		msg, err := enroll.InstallService(*service, bin, b.ConfigFile, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ha-agent:", err)
			return 1
		}
		fmt.Println(msg)
		fmt.Printf("\nRun on each other node (each token works once, until %s; it is a secret and is not shown again):\n\n",
			b.Expires.UTC().Format(time.RFC3339))
		for _, in := range b.Invites {
			fmt.Printf("  # %s (%s, %s)\n  ha-agent join %s\n\n", in.Node, in.Role, in.Addr, in.Token)
		}
		return 0
	case "join":
		if len(pos) != 1 {
			fmt.Fprintln(os.Stderr, "usage: ha-agent join TOKEN [--service auto|systemd|runit|none]")
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		g, file, err := enroll.Join(ctx, pos[0], p, *force)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ha-agent:", err)
			return 1
		}
		fmt.Printf("joined deployment of recipe %s as %s: %s\n", g.Recipe, g.Node, file)
		msg, err := enroll.InstallService(*service, bin, file, p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ha-agent:", err)
			return 1
		}
		fmt.Println(msg)
		return 0
	default: // token
		if len(pos) != 1 {
			fmt.Fprintln(os.Stderr, "usage: ha-agent token NODE   (on the node the deployment was bootstrapped on)")
			return 2
		}
		t, err := enroll.IssueAgain(p.State, pos[0], *ttl)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ha-agent:", err)
			return 1
		}
		fmt.Printf("ha-agent join %s\n", t)
		return 0
	}
}
