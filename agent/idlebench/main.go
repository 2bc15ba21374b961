// Command idlebench measures what an idle deployment costs the machine it
// runs on: CPU (from the kernel's per-thread run time, not the coarse tick
// counters), context switches and resident memory of each ha-agent of an
// N-node deployment, and of the idle `hatui --demo` process.
//
//	go run ./agent/idlebench -nodes 5 -seconds 60
//	go run ./agent/idlebench -demo -seconds 60
//
// An HA agent that takes the PBX's CPU is a fault of its own, and a loaded
// machine is what makes heartbeats late. On a virtual machine the CPU
// figure of a process that mostly sleeps varies with the host's load (each
// wake-up is a hypervisor exit), so the tool also prints context switches
// per second, which do not.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
	"github.com/hatui/hatui/protocol/client"
)

const key = "f3r7m1w4qH0n8C5sXk2c6p9yZb1vA0eL3uT7oI4jQ5g="

func main() {
	nodes := flag.Int("nodes", 5, "agents in the deployment")
	seconds := flag.Int("seconds", 60, "measuring window")
	settle := flag.Duration("settle", 5*time.Second, "idle time before measuring, once every agent sees every other")
	subnet := flag.String("subnet", "127.0.93", "first three octets of the agents' loopback addresses")
	demo := flag.Bool("demo", false, "measure an idle `hatui --demo` (in tmux) instead of agents")
	bin := flag.String("bin", "", "a built ha-agent (or hatui with -demo) to measure instead of building this tree's")
	flag.Parse()
	dir, err := os.MkdirTemp("", "idlebench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	window := time.Duration(*seconds) * time.Second
	if *demo {
		err = benchDemo(dir, *bin, *settle, window)
	} else {
		err = benchAgents(dir, *bin, *nodes, *subnet, *settle, window)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "idlebench:", err)
	os.Exit(1)
}

func build(dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return out, nil
}

func benchAgents(dir, bin string, n int, subnet string, settle, window time.Duration) error {
	if bin == "" {
		var err error
		if bin, err = build(dir, "./agent/cmd/ha-agent", "ha-agent"); err != nil {
			return err
		}
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	socks := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		nd := filepath.Join(dir, name)
		if err := os.MkdirAll(nd, 0o700); err != nil {
			return err
		}
		socks[i] = filepath.Join(nd, "sock")
		cfg := fmt.Sprintf(`deployment = "idle"
node = %q
site = "a"
state_dir = %q
[socket]
path = %q
[gossip]
bind = "%s.%d:7946"
join = ["%s.1:7946"]
keys = [%q]
`, name, filepath.Join(nd, "state"), socks[i], subnet, i+1, subnet, key)
		path := filepath.Join(nd, "ha-agent.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			return err
		}
		log, err := os.Create(filepath.Join(nd, "log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(bin, "-config", path)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		procs = append(procs, cmd)
	}
	start := time.Now()
	if err := waitAllSee(socks, n, 60*time.Second); err != nil {
		return err
	}
	fmt.Printf("%d agents see each other after %.1f s; idle %s, then measuring %s\n", n, time.Since(start).Seconds(), settle, window)
	time.Sleep(settle)
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.Process.Pid)
	}
	return report(pids, window, "agent")
}

// waitAllSee waits until every agent reports n alive members.
func waitAllSee(socks []string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, s := range socks {
		for {
			if alive(s) == n {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("agent at %s does not see %d members after %s", s, n, limit)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func alive(sock string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.UnixDialer(sock), client.Options{})
	if err != nil {
		return 0
	}
	defer c.Close()
	snap, err := c.Status(ctx, "")
	if err != nil {
		return 0
	}
	k := 0
	for _, nd := range snap.Nodes() {
		if nd.Member == protocol.MemberAlive {
			k++
		}
	}
	return k
}

func benchDemo(dir, bin string, settle, window time.Duration) error {
	if _, err := exec.LookPath("tmux"); err != nil {
		return errors.New("the demo is measured in tmux: install tmux")
	}
	if bin == "" {
		var err error
		if bin, err = build(dir, "./console/cmd/hatui", "hatui"); err != nil {
			return err
		}
	}
	sess := fmt.Sprintf("idlebench-%d", os.Getpid())
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", sess, "-x", "120", "-y", "40", bin, "--demo").CombinedOutput(); err != nil {
		return fmt.Errorf("starting the demo in tmux: %v: %s", err, out)
	}
	defer exec.Command("tmux", "kill-session", "-t", sess).Run()
	out, err := exec.Command("tmux", "list-panes", "-t", sess, "-F", "#{pane_pid}").Output()
	if err != nil {
		return fmt.Errorf("finding the demo's process: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return fmt.Errorf("reading the demo's pid %q: %w", out, err)
	}
	start := time.Now()
	for {
		screen, _ := exec.Command("tmux", "capture-pane", "-p", "-t", sess).Output()
		if strings.Contains(string(screen), "pbx-b2") && strings.Contains(string(screen), "arbitrator") {
			break
		}
		if time.Since(start) > time.Minute {
			return fmt.Errorf("the demo's first screen did not come within a minute:\n%s", screen)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("demo on screen after %.1f s; idle %s, then measuring %s\n", time.Since(start).Seconds(), settle, window)
	time.Sleep(settle)
	return report([]int{pid}, window, "demo")
}

// usage is what the kernel counted for a process: run time in ns summed
// over its threads, context switches, resident memory.
type usage struct {
	runNS, switches int64
	rssKB           int64
}

func read(pid int) (usage, error) {
	var u usage
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(tasks) == 0 {
		return u, fmt.Errorf("process %d is gone", pid)
	}
	for _, t := range tasks {
		if b, err := os.ReadFile(filepath.Join(t, "schedstat")); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				u.runNS += v
			}
		}
		if b, err := os.ReadFile(filepath.Join(t, "status")); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					u.switches += n
				}
			}
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return u, nil
}

func report(pids []int, window time.Duration, what string) error {
	before := make([]usage, len(pids))
	for i, p := range pids {
		u, err := read(p)
		if err != nil {
			return err
		}
		before[i] = u
	}
	time.Sleep(window)
	var cpus []float64
	fmt.Printf("%-8s %8s %12s %9s\n", what, "CPU %", "switches/s", "RSS MB")
	for i, p := range pids {
		u, err := read(p)
		if err != nil {
			return err
		}
		cpu := 100 * float64(u.runNS-before[i].runNS) / float64(window.Nanoseconds())
		cs := float64(u.switches-before[i].switches) / window.Seconds()
		cpus = append(cpus, cpu)
		fmt.Printf("%-8d %8.2f %12.0f %9.1f\n", p, cpu, cs, float64(u.rssKB)/1024)
	}
	slices.Sort(cpus)
	fmt.Printf("median CPU %.2f %% of a core over %s\n", cpus[len(cpus)/2], window)
	return nil
}
