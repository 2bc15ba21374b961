//go:build linux

package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// namePrefix starts the name of every namespace a lab makes; the pid of the
// process that made it follows, so that New can tell a stale namespace
// (its maker is dead) from one of a lab running now.
const namePrefix = "hl"

// staleName matches the namespaces of any lab and captures the maker's pid.
var staleName = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-[0-9]+-`)

// validName is what a host or net name may look like: it becomes part of a
// namespace name and of log file names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// labSeq numbers the labs of this process.
var labSeq atomic.Int64

// switchName is the host name reserved for the lab's switch namespace.
const switchName = "switch"

// Lab is the network of one test: its namespaces, bridges, routers and
// processes. Make it with New.
type Lab struct {
	t      testing.TB
	prefix string // "hl<pid>-<seq>-"
	ipPath string
	dir    string // the test's temp dir, for process logs

	mu      sync.Mutex
	sw      *Host // the switch namespace, made with the first Net
	nets    []*Net
	hosts   []*Host
	routers []*Router
	procs   []*Proc
	logSeq  int
	cuts    map[[2]*Host]bool // both orders of every cut pair
	closed  bool
}

// New makes an empty lab for t. It requires root, ip and nft: without them
// it skips t, or fails it when CI=true. Everything the lab creates is
// removed in t.Cleanup, also after a failed test. New first removes the
// namespaces (and the processes in them) that an earlier run of any lab left
// behind when it was killed before its cleanup, judged by the dead pid in
// their names.
func New(t testing.TB) *Lab {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		missing = append(missing, "ip (apt-get install iproute2)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		missing = append(missing, "nft (apt-get install nftables)")
	}
	if len(missing) > 0 {
		lack(t, "netlab needs "+strings.Join(missing, ", "))
	}
	l := &Lab{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d-", namePrefix, os.Getpid(), labSeq.Add(1)),
		ipPath: ipPath,
		// TempDir registers its removal first, so it runs after the
		// lab's cleanup has stopped every process writing a log there.
		dir:  t.TempDir(),
		cuts: map[[2]*Host]bool{},
	}
	removeStale(t)
	t.Cleanup(l.cleanup)
	return l
}

// lack skips t for a missing requirement, or fails it in CI (CI=true),
// which installs everything.
func lack(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "" {
		t.Skip(msg + "; skipping outside CI")
	}
	t.Fatal(msg)
}

// Prefix returns the start of the name of every namespace of this lab.
func (l *Lab) Prefix() string { return l.prefix }

// Dir returns the directory holding the logs of the lab's processes.
func (l *Lab) Dir() string { return l.dir }

// fatalf ends the test with a message naming the lab.
func (l *Lab) fatalf(format string, args ...any) {
	l.t.Helper()
	l.t.Fatalf("netlab: "+format, args...)
}

// run runs ip with args and returns its combined output.
func (l *Lab) run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(l.ipPath, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// ip runs ip with args, ending the test when it fails.
func (l *Lab) ip(args ...string) string {
	l.t.Helper()
	out, err := l.run("", args...)
	if err != nil {
		l.fatalf("%v", err)
	}
	return out
}

// batch runs lines as one `ip -n ns -batch -` (one fork for many commands),
// ending the test when one fails. family is "" or "-4"/"-6".
func (l *Lab) batch(ns, family string, lines ...string) {
	l.t.Helper()
	args := []string{"-n", ns}
	if family != "" {
		args = append(args, family)
	}
	args = append(args, "-batch", "-")
	if _, err := l.run(strings.Join(lines, "\n")+"\n", args...); err != nil {
		l.fatalf("%v\ninput:\n%s", err, strings.Join(lines, "\n"))
	}
}

// newNS makes a namespace named l.prefix+name with lo up and the sysctls
// every lab namespace shares.
func (l *Lab) newNS(name string) *Host {
	l.t.Helper()
	if l.closed {
		l.fatalf("lab used after its test ended")
	}
	ns := l.prefix + name
	l.ip("netns", "add", ns)
	fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		exec.Command(l.ipPath, "netns", "del", ns).Run()
		l.fatalf("opening namespace %s: %v", ns, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		exec.Command(l.ipPath, "netns", "del", ns).Run()
		l.fatalf("reading namespace %s: %v", ns, err)
	}
	h := &Host{lab: l, name: name, ns: ns, nsfd: fd, nsIno: st.Ino, idx: len(l.hosts)}
	l.hosts = append(l.hosts, h)
	l.ip("-n", ns, "link", "set", "lo", "up")
	err = h.Do(func() error {
		return writeSysctls(map[string]string{
			// IPv6 addresses survive LinkDown as IPv4 ones do, and are
			// usable at once (no duplicate address detection).
			"net/ipv6/conf/all/keep_addr_on_down":     "1",
			"net/ipv6/conf/default/keep_addr_on_down": "1",
			"net/ipv6/conf/all/accept_dad":            "0",
			"net/ipv6/conf/default/accept_dad":        "0",
		})
	})
	if err != nil {
		l.fatalf("setting up namespace %s: %v", ns, err)
	}
	return h
}

// writeSysctls writes /proc/sys/<key> = value. Run inside Do, it sets the
// namespace's own values: /proc/sys/net follows the calling thread's
// namespace.
func writeSysctls(kv map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(kv[k]), 0); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}

// Net is an L2 segment: a Linux bridge in the lab's switch namespace.
type Net struct {
	lab    *Lab
	name   string
	idx    int
	prefix netip.Prefix
	bridge string // name in the switch namespace
}

// Net makes an L2 segment named name. cidr (like "10.81.1.0/24") is the
// segment's address range: Attach refuses addresses outside it, and routers
// route it.
func (l *Lab) Net(name, cidr string) *Net {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !validName.MatchString(name) {
		l.fatalf("net name %q: want [a-z][a-z0-9-]*, at most 32 characters", name)
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		l.fatalf("net %s: %v", name, err)
	}
	if p != p.Masked() {
		l.fatalf("net %s: %s has host bits set; want %s", name, cidr, p.Masked())
	}
	for _, n := range l.nets {
		if n.name == name {
			l.fatalf("net %s made twice", name)
		}
		if n.prefix.Overlaps(p) {
			l.fatalf("net %s (%s) overlaps net %s (%s)", name, p, n.name, n.prefix)
		}
	}
	if l.sw == nil {
		l.sw = l.newNS(switchName)
		// The switch only forwards frames: no addresses of its own, no
		// IPv6 chatter from its ports.
		err := l.sw.Do(func() error {
			return writeSysctls(map[string]string{
				"net/ipv6/conf/all/disable_ipv6":     "1",
				"net/ipv6/conf/default/disable_ipv6": "1",
			})
		})
		if err != nil {
			l.fatalf("setting up the switch namespace: %v", err)
		}
	}
	n := &Net{lab: l, name: name, idx: len(l.nets), prefix: p, bridge: fmt.Sprintf("br%d", len(l.nets))}
	l.batch(l.sw.ns, "",
		"link add "+n.bridge+" type bridge",
		"link set "+n.bridge+" up")
	l.nets = append(l.nets, n)
	return n
}

// Name returns the net's name.
func (n *Net) Name() string { return n.name }

// Prefix returns the net's address range.
func (n *Net) Prefix() netip.Prefix { return n.prefix }

// Bridge returns the name of the net's bridge in the switch namespace
// (SwitchNS), for captures: `ip netns exec SW tcpdump -i br0`.
func (n *Net) Bridge() string { return n.bridge }

// SwitchNS returns the name of the namespace that holds the lab's bridges,
// or "" before the first Net.
func (l *Lab) SwitchNS() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sw == nil {
		return ""
	}
	return l.sw.ns
}

// cleanup stops every process, closes the delay devices and sockets and
// deletes every namespace of the lab.
func (l *Lab) cleanup() {
	l.mu.Lock()
	l.closed = true
	procs := slices.Clone(l.procs)
	routers := slices.Clone(l.routers)
	hosts := slices.Clone(l.hosts)
	l.mu.Unlock()

	for _, p := range procs {
		p.kill(5 * time.Second)
	}
	if l.t.Failed() {
		for _, p := range procs {
			l.t.Logf("netlab: %s on %s (pid %d, %s), last lines of %s:\n%s",
				p.prog, p.host.name, p.pid, p.state(), p.logPath, tail(p.Log(), 40))
		}
	}
	for _, r := range routers {
		r.stopDelay()
	}
	for _, h := range hosts {
		h.closeNS() // first, so that no HasAddr opens a socket again
		h.closeNetlink()
		// Daemons that left the process group, and processes started
		// with `ip netns exec` by the test itself, would keep the
		// namespace alive unnamed.
		killNSProcs(l.ipPath, h.ns)
		if out, err := exec.Command(l.ipPath, "netns", "del", h.ns).CombinedOutput(); err != nil {
			l.t.Errorf("netlab: deleting namespace %s: %v: %s", h.ns, err, out)
		}
	}
}

// killNSProcs SIGKILLs every process in namespace ns.
func killNSProcs(ipPath, ns string) {
	out, err := exec.Command(ipPath, "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// removeStale deletes the namespaces of labs whose process is dead, with
// any process still inside them.
func removeStale(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return // no namespace at all yet
	}
	ipPath, _ := exec.LookPath("ip")
	for _, e := range ents {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		killNSProcs(ipPath, e.Name())
		if out, err := exec.Command(ipPath, "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("netlab: removing stale namespace %s: %v: %s", e.Name(), err, out)
			continue
		}
		t.Logf("netlab: removed stale namespace %s (its maker, pid %d, is gone)", e.Name(), pid)
	}
}

// alive reports whether a process with pid exists.
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
