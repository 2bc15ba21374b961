//go:build linux

package netlab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lan is three hosts on one net, each running a TCP echo on port 7000.
type lan struct {
	lab     *Lab
	net     *Net
	a, b, c *Host
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	l := New(t)
	n := l.Net("lan", "10.81.1.0/24")
	s := &lan{lab: l, net: n, a: l.Host("a"), b: l.Host("b"), c: l.Host("c")}
	for i, h := range []*Host{s.a, s.b, s.c} {
		if got := h.Attach(n, fmt.Sprintf("10.81.1.%d/24", i+2)); got != "eth0" {
			t.Fatalf("first interface of %s is %q, want eth0", h, got)
		}
		tcpEcho(t, h, h.IP(n)+":7000")
	}
	return s
}

// reach reports whether from can complete an echo with to's TCP server.
func (s *lan) reach(from, to *Host) error {
	return tcpRoundTrip(from, net.JoinHostPort(to.IP(s.net), "7000"), 400*time.Millisecond)
}

// TestPartitions breaks the link between a and b in each of the lab's ways,
// checks that TCP between them fails both ways while c still reaches b
// (where the break is between a and b only), then mends it and waits for
// TCP to work again.
func TestPartitions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		brk, mend func(s *lan)
	}{
		{
			name: "cut and heal",
			brk: func(s *lan) {
				s.lab.Cut(s.a, s.b)
				s.lab.Cut(s.b, s.a) // idempotent: one Heal undoes both
			},
			mend: func(s *lan) { s.lab.Heal(s.a, s.b) },
		},
		{
			name: "isolate and rejoin",
			brk:  func(s *lan) { s.a.Isolate(); s.a.Isolate() },
			mend: func(s *lan) { s.a.Rejoin() },
		},
		{
			name: "link down and up",
			brk:  func(s *lan) { s.a.LinkDown(s.net) },
			mend: func(s *lan) { s.a.LinkUp(s.net) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newLAN(t)
			for _, p := range [][2]*Host{{s.a, s.b}, {s.b, s.a}, {s.c, s.b}} {
				waitFor(t, fmt.Sprintf("%s to reach %s", p[0], p[1]), 10*time.Second, func() bool { return s.reach(p[0], p[1]) == nil })
			}
			tc.brk(s)
			if err := s.reach(s.a, s.b); err == nil {
				t.Errorf("a reaches b after %s", tc.name)
			}
			if err := s.reach(s.b, s.a); err == nil {
				t.Errorf("b reaches a after %s", tc.name)
			}
			if err := s.reach(s.c, s.b); err != nil {
				t.Errorf("c no longer reaches b after %s: %v", tc.name, err)
			}
			tc.mend(s)
			waitFor(t, "a to reach b again", 10*time.Second, func() bool { return s.reach(s.a, s.b) == nil })
			waitFor(t, "b to reach a again", 10*time.Second, func() bool { return s.reach(s.b, s.a) == nil })
		})
	}
}

// TestIsolatedSendsSucceedAndLoopbackWorks checks the semantics of an
// unplugged cable: an isolated host's UDP sends succeed (no EPERM from a
// firewall), nothing arrives at the peer, and its own loopback works.
func TestIsolatedSendsSucceedAndLoopbackWorks(t *testing.T) {
	t.Parallel()
	s := newLAN(t)
	var pc net.PacketConn
	if err := s.b.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", s.b.IP(s.net)+":7001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s.a.Isolate()
	var c net.Conn
	if err := s.a.Do(func() (err error) {
		c, err = net.Dial("udp", s.b.IP(s.net)+":7001")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 5 {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("send %d from an isolated host failed: %v (want silent loss)", i, err)
		}
	}
	// Proving that nothing arrives needs a bounded wait.
	pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := pc.ReadFrom(make([]byte, 16)); err == nil {
		t.Fatalf("b received %d bytes from an isolated host", n)
	}
	tcpEcho(t, s.a, "127.0.0.1:7002")
	if err := tcpRoundTrip(s.a, "127.0.0.1:7002", 2*time.Second); err != nil {
		t.Fatalf("loopback inside an isolated host: %v", err)
	}
}

// TestCutCoversAddressesAddedLater: a VIP that b takes after the cut is
// cut from a too (matched by MAC on a shared net), and once it moves on to
// c, a reaches it there.
func TestCutCoversAddressesAddedLater(t *testing.T) {
	t.Parallel()
	s := newLAN(t)
	s.lab.Cut(s.a, s.b)
	s.lab.ip("-n", s.b.NS(), "addr", "add", "10.81.1.100/24", "dev", "eth0")
	tcpEcho(t, s.b, "10.81.1.100:7003")
	if err := tcpRoundTrip(s.c, "10.81.1.100:7003", 2*time.Second); err != nil {
		t.Fatalf("c cannot reach b's new VIP: %v", err)
	}
	if err := tcpRoundTrip(s.a, "10.81.1.100:7003", 400*time.Millisecond); err == nil {
		t.Fatalf("a reaches b's new VIP through the cut")
	}

	// The VIP moves on to c, which a is not cut from. (The flush stands
	// in for the gratuitous ARP a real VIP move sends.)
	s.lab.ip("-n", s.b.NS(), "addr", "del", "10.81.1.100/24", "dev", "eth0")
	s.lab.ip("-n", s.c.NS(), "addr", "add", "10.81.1.100/24", "dev", "eth0")
	s.lab.ip("-n", s.a.NS(), "neigh", "flush", "10.81.1.100")
	tcpEcho(t, s.c, "10.81.1.100:7003")
	waitFor(t, "a to reach the VIP on c", 10*time.Second, func() bool {
		return tcpRoundTrip(s.a, "10.81.1.100:7003", 400*time.Millisecond) == nil
	})
}

// TestHasAddr adds and removes an address behind the lab's back with ip
// and watches HasAddr follow.
func TestHasAddr(t *testing.T) {
	t.Parallel()
	l := New(t)
	n := l.Net("lan", "10.81.2.0/24")
	h := l.Host("node")
	h.Attach(n, "10.81.2.2/24")
	cases := []struct {
		ip   string
		want bool
	}{
		{"10.81.2.2", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"10.81.2.3", false},
		{"10.81.2.50", false},
	}
	for _, c := range cases {
		got, err := h.HasAddr(c.ip)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("HasAddr(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	if _, err := h.HasAddr("not-an-ip"); err == nil {
		t.Errorf("HasAddr(not-an-ip) gave no error")
	}

	for _, a := range []string{"10.81.2.50", "fd81:2::50"} {
		prefix := a + "/24"
		if strings.Contains(a, ":") {
			prefix = a + "/64"
		}
		l.ip("-n", h.NS(), "addr", "add", prefix, "dev", "eth0")
		if ok, err := h.HasAddr(a); err != nil || !ok {
			t.Fatalf("after ip addr add %s: HasAddr = %v, %v; want true", a, ok, err)
		}
		l.ip("-n", h.NS(), "addr", "del", prefix, "dev", "eth0")
		if ok, err := h.HasAddr(a); err != nil || ok {
			t.Fatalf("after ip addr del %s: HasAddr = %v, %v; want false", a, ok, err)
		}
	}
}

// TestCommandRunsInsideTheHost: a command sees the host's own interfaces
// in ip, /sys/class/net and /proc/net.
func TestCommandRunsInsideTheHost(t *testing.T) {
	t.Parallel()
	l := New(t)
	n := l.Net("lan", "10.81.3.0/24")
	h := l.Host("node")
	h.Attach(n, "10.81.3.2/24")
	out, err := h.Command("sh", "-c", "ip -br addr show dev eth0; ls /sys/class/net; cat /proc/net/dev").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"10.81.3.2/24", "eth0", "lo"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output inside the host lacks %q:\n%s", want, out)
		}
	}
	mac, err := h.Command("cat", "/sys/class/net/eth0/address").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(mac)); got != h.ifaces[0].mac() {
		t.Errorf("eth0's MAC in /sys is %s, want the lab's %s", got, h.ifaces[0].mac())
	}
}

// TestStartKillKillsTheGroup: Kill ends the leader and the child it
// started; Stop ends a process with SIGTERM.
func TestStartKillKillsTheGroup(t *testing.T) {
	t.Parallel()
	l := New(t)
	h := l.Host("node")
	p := h.Start(h.Command("sh", "-c", `sleep 300 & echo "child=$!"; wait`))
	var child int
	waitFor(t, "the shell to report its child", 10*time.Second, func() bool {
		for _, line := range strings.Split(p.Log(), "\n") {
			if v, ok := strings.CutPrefix(line, "child="); ok {
				child, _ = strconv.Atoi(v)
			}
		}
		return child > 0
	})
	if p.Exited() {
		t.Fatalf("the shell exited early: %v\n%s", p.Wait(), p.Log())
	}
	if g, err := syscall.Getpgid(child); err != nil || g != p.Pid() {
		t.Fatalf("child %d is in group %d (%v), want the leader's %d", child, g, err, p.Pid())
	}
	p.Kill()
	if !p.Exited() {
		t.Fatalf("Kill returned before the leader exited")
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Wait after Kill = %v, want signal: killed", err)
	}
	waitFor(t, "the child sleep to be gone", 10*time.Second, func() bool { return procGone(child) })

	q := h.Start(h.Command("sleep", "300"))
	if err := q.Stop(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Stop = %v, want signal: terminated", err)
	}
	done := h.Start(h.Command("echo", "hello"))
	if err := done.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := done.Log(); got != "hello\n" {
		t.Errorf("log of echo = %q", got)
	}
}

// TestCleanupLeavesNothing runs a lab with a router, a delay and a
// process in a subtest and checks that after it no namespace of the lab is
// left and the process is gone.
func TestCleanupLeavesNothing(t *testing.T) {
	t.Parallel()
	var prefix string
	var pid int
	t.Run("lab", func(t *testing.T) {
		l := New(t)
		prefix = l.Prefix()
		n1, n2 := l.Net("one", "10.81.4.0/24"), l.Net("two", "10.81.5.0/24")
		h := l.Host("node")
		h.Attach(n1, "10.81.4.2/24")
		r := l.Router("wan", map[*Net]string{n1: "10.81.4.1/24", n2: "10.81.5.1/24"})
		r.SetDelay(10 * time.Millisecond)
		h.Isolate()
		pid = h.Start(h.Command("sleep", "300")).Pid()
		if _, err := h.HasAddr("10.81.4.2"); err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, ns := range netnsNames(t) {
			found = found || strings.HasPrefix(ns, prefix)
		}
		if !found {
			t.Fatalf("no namespace with prefix %s while the lab runs", prefix)
		}
	})
	for _, ns := range netnsNames(t) {
		if strings.HasPrefix(ns, prefix) {
			t.Errorf("namespace %s left after the test", ns)
		}
	}
	if !procGone(pid) {
		t.Errorf("process %d still runs after the test", pid)
	}
}

// TestStaleNamespacesAreRemoved makes a namespace as a killed run would
// have left it (its maker's pid dead, a process inside) and checks that
// New removes both.
func TestStaleNamespacesAreRemoved(t *testing.T) {
	New(t) // skips or fails as the CI rule says when the lab cannot run
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	if alive(pid) {
		t.Skipf("pid %d was reused at once", pid)
	}
	ns := fmt.Sprintf("%s%d-1-stale", namePrefix, pid)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill() })
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	// The process must be inside before New looks.
	waitFor(t, "the sleeper to enter the namespace", 10*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		return strings.Contains(string(out), strconv.Itoa(sleeper.Process.Pid))
	})

	New(t)
	for _, n := range netnsNames(t) {
		if n == ns {
			t.Fatalf("stale namespace %s is still there", ns)
		}
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the process in the stale namespace still runs")
	}
}

// TestSIPpBetweenHosts runs a SIPp UAS in one host and a UAC in another
// for one call, showing how to run sipp in the lab.
func TestSIPpBetweenHosts(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sipp"); err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("sipp not installed (apt-get install sip-tester); skipping outside CI")
		}
		t.Fatal("sipp not installed")
	}
	l := New(t)
	n := l.Net("lan", "10.81.6.0/24")
	uas, uac := l.Host("uas"), l.Host("uac")
	uas.Attach(n, "10.81.6.2/24")
	uac.Attach(n, "10.81.6.3/24")
	// sipp writes its screen and trace files to the working directory.
	srv := uas.Command("sipp", "-sn", "uas", "-i", uas.IP(n), "-p", "5060", "-nostdin", "-m", "1")
	srv.Dir = t.TempDir()
	s := uas.Start(srv)
	waitFor(t, "the UAS to listen", 10*time.Second, func() bool {
		out, _ := uas.Command("ss", "-Hlun", "sport = :5060").Output()
		return strings.Contains(string(out), uas.IP(n))
	})
	cli := uac.Command("sipp", "-sn", "uac", uas.IP(n)+":5060", "-i", uac.IP(n), "-p", "5061",
		"-nostdin", "-m", "1", "-timeout", "20s", "-timeout_error")
	cli.Dir = t.TempDir()
	c := uac.Start(cli)
	if err := c.Wait(); err != nil {
		t.Fatalf("sipp uac: %v\n%s", err, tail(c.Log(), 30))
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("sipp uas: %v\n%s", err, tail(s.Log(), 30))
	}
}
