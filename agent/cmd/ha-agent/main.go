// Command ha-agent is the hatui node agent: membership and failure
// detection, the local protocol socket, and forwarding to other agents.
//
// Usage:
//
//	ha-agent [--config /etc/ha-agent/ha-agent.toml] [--insecure-dev]
//	ha-agent check-config FILE
//	ha-agent keygen
//	ha-agent bootstrap --recipe DIR [--addr NODE=IP]... [--service auto|systemd|runit|none]
//	ha-agent join TOKEN [--service auto|systemd|runit|none]
//	ha-agent token NODE
//	ha-agent version
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/cluster"
	"github.com/hatui/hatui/agent/config"
	"github.com/hatui/hatui/agent/database"
	"github.com/hatui/hatui/agent/enroll"
	"github.com/hatui/hatui/agent/geosite"
	"github.com/hatui/hatui/agent/lines"
	"github.com/hatui/hatui/agent/localapi"
)

// stopWait bounds a graceful stop.
const stopWait = 15 * time.Second

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		// An agent's work is small and bursty: probes, heartbeats, a few
		// sessions. One P means no idle thread spins up to steal each
		// wake-up, which halves an idle agent's context switches; the
		// environment variable still overrides it.
		runtime.GOMAXPROCS(1)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "keygen":
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				fmt.Fprintln(os.Stderr, "ha-agent: generating key:", err)
				return 1
			}
			fmt.Println(base64.StdEncoding.EncodeToString(k))
			return 0
		case "version":
			fmt.Println("ha-agent", localapi.AgentVersion)
			return 0
		case "bootstrap", "join", "token":
			return enrollCmd(args[0], args[1:])
		case "check-config":
			if len(args) != 2 {
				fmt.Fprintln(os.Stderr, "usage: ha-agent check-config FILE")
				return 2
			}
			cfg, err := config.Load(args[1])
			var report string
			if err == nil {
				// Resources, checks, watchdog and timings, as at start.
				report, err = cluster.Check(cfg)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "ha-agent:", err)
				return 1
			}
			// Warnings do not fail the check: the file is valid, but risky.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			warns := database.CheckConfig(ctx, cfg)
			cancel()
			for _, w := range warns {
				fmt.Fprintln(os.Stderr, "ha-agent: warning:", w)
			}
			if len(warns) > 0 {
				fmt.Printf("%s: ok, with %d warning(s)\n", args[1], len(warns))
				return 0
			}
			fmt.Println(args[1] + ": ok")
			fmt.Print(report)
			return 0
		}
	}
	fs := flag.NewFlagSet("ha-agent", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/ha-agent/ha-agent.toml", "node configuration `file`")
	insecure := fs.Bool("insecure-dev", false, "allow running without a gossip key (throwaway test setups only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		logger.Printf("ha-agent: %v", err)
		return 1
	}
	if *insecure {
		logger.Printf("WARNING: --insecure-dev: gossip may run unencrypted and forwarding is off without a key")
	}
	a, err := agent.New(cfg, agent.Options{
		Insecure: *insecure,
		Logger:   logger,
		// Every agent runs every feature, even one that drives no
		// switch: it must know the verbs to forward them.
		Features: []agent.FeatureFunc{cluster.New, lines.New, database.New, geosite.New, enroll.New},
	})
	if err != nil {
		logger.Printf("ha-agent: starting: %v", err)
		return 1
	}
	logger.Printf("ha-agent %s: node %s of site %s, cluster %s; socket %s", localapi.AgentVersion, cfg.Node, cfg.Site, cfg.Cluster, cfg.Socket.Path)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Printf("ha-agent: %v: leaving the cluster", s)
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			logger.Printf("ha-agent: stopping: %v", err)
			return 1
		}
		return 0
	case <-time.After(stopWait):
		// A peer that stopped answering must not hold the node's
		// shutdown (a reboot, a fencing) hostage.
		logger.Printf("ha-agent: stopping took longer than %v; exiting anyway", stopWait)
		return 1
	case s := <-sig:
		logger.Printf("ha-agent: %v while stopping: exiting now", s)
		return 1
	}
}
