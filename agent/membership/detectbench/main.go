// Command detectbench measures how long the tuned Serf pool takes to
// declare a crashed member failed, and counts false failures of members
// that were never stopped, optionally while the machine is kept busy.
//
//	go run ./agent/membership/detectbench -sizes 3,5,25 -trials 10 -busy 2
//
// For each pool size it starts real Serf members on 127.0.x.y, waits until
// all see each other, crashes one (shutdown without leave) and times the
// failed event at every survivor. It prints the median and worst of the
// first survivor to notice and of the last.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/agent/membership"
	"github.com/hatui/hatui/protocol"
)

func main() {
	sizes := flag.String("sizes", "3,5,25", "comma-separated pool sizes")
	trials := flag.Int("trials", 10, "crashes per size")
	busy := flag.Int("busy", 0, "number of CPU-burning processes to run meanwhile")
	probe := flag.Duration("probe", membership.LAN.ProbeInterval, "probe interval")
	timeout := flag.Duration("timeout", membership.LAN.ProbeTimeout, "probe timeout")
	mult := flag.Int("mult", membership.LAN.SuspicionMult, "suspicion multiplier")
	gossip := flag.Duration("gossip", membership.LAN.GossipInterval, "gossip interval")
	flag.Parse()

	for i := 0; i < *busy; i++ {
		cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "detectbench: starting burner:", err)
			os.Exit(1)
		}
		defer cmd.Process.Kill()
	}
	t := membership.LAN
	t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult, t.GossipInterval = *probe, *timeout, *mult, *gossip
	key := make([]byte, 32)
	rand.Read(key)

	fmt.Printf("timings: probe %v, timeout %v, suspicion x%d, gossip %v; busy burners: %d\n",
		t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult, t.GossipInterval, *busy)
	fmt.Printf("%5s %7s %12s %12s %12s %12s %7s\n", "nodes", "trials", "first p50", "first worst", "all p50", "all worst", "false")
	subnet := 0
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "detectbench: bad size %q\n", s)
			os.Exit(2)
		}
		var first, all []time.Duration
		falseFailures, failedTrials := 0, 0
		for trial := 0; trial < *trials; trial++ {
			subnet++
			f, a, ff, err := runTrial(n, subnet, key, t)
			falseFailures += ff
			if err != nil {
				fmt.Fprintln(os.Stderr, "detectbench:", err)
				failedTrials++
				continue
			}
			first, all = append(first, f), append(all, a)
		}
		if len(first) == 0 {
			fmt.Printf("%5d %7d  no trial completed (%d failed)\n", n, *trials, failedTrials)
			continue
		}
		fmt.Printf("%5d %7d %12v %12v %12v %12v %7d\n", n, len(first),
			median(first).Round(time.Millisecond), worst(first).Round(time.Millisecond),
			median(all).Round(time.Millisecond), worst(all).Round(time.Millisecond), falseFailures)
	}
}

// runTrial starts n members, crashes the last, and returns the time until
// the first and the last survivor saw it failed, plus false failures.
func runTrial(n, subnet int, key []byte, t membership.Timings) (first, last time.Duration, falseFailures int, err error) {
	var (
		mu       sync.Mutex
		crashAt  time.Time
		seen     []time.Duration
		victim   = "m0"
		allSeen  = make(chan struct{})
		pools    []*membership.Pool
		survivor = n - 1
	)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		p, err := membership.Start(membership.Options{
			Name:     name,
			BindAddr: fmt.Sprintf("127.%d.%d.%d:7946", 100+subnet/250, subnet%250, i+1),
			Keys:     [][]byte{key},
			Timings:  t,
			OnChange: func(c membership.Change) {
				if c.Kind != "failed" {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if c.Member.Name != victim || crashAt.IsZero() {
					falseFailures++
					return
				}
				seen = append(seen, time.Since(crashAt))
				if len(seen) == survivor {
					close(allSeen)
				}
			},
		})
		if err != nil {
			return 0, 0, 0, err
		}
		pools = append(pools, p)
		if i > 0 {
			// Join a few members already in, retrying: on a loaded
			// machine one node answering every join is a bottleneck.
			var err error
			for try := 0; try < 5; try++ {
				targets := []string{pools[(i-1)/2].Addr(), pools[i-1].Addr()}
				if _, err = p.Join(targets); err == nil {
					break
				}
			}
			if err != nil {
				return 0, 0, 0, err
			}
		}
	}
	defer func() {
		for _, p := range pools[1:] {
			p.Shutdown()
		}
	}()
	defer pools[0].Shutdown()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for _, p := range pools {
			alive := 0
			for _, m := range p.Members() {
				if m.Status == protocol.MemberAlive {
					alive++
				}
			}
			ok = ok && alive == n
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, falseFailures, fmt.Errorf("pool of %d did not converge in 60s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let probes settle into their rhythm
	mu.Lock()
	crashAt = time.Now()
	mu.Unlock()
	pools[0].Shutdown()
	select {
	case <-allSeen:
	case <-time.After(30 * time.Second):
		return 0, 0, falseFailures, fmt.Errorf("survivors did not all see the crash within 30s")
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(seen, func(i, j int) bool { return seen[i] < seen[j] })
	return seen[0], seen[len(seen)-1], falseFailures, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func worst(d []time.Duration) time.Duration {
	w := d[0]
	for _, x := range d {
		if x > w {
			w = x
		}
	}
	return w
}
