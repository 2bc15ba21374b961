//go:build linux

package resource

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ip runs ip(8), failing the test on error.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addNetns creates a network namespace removed at the end of the test.
func addNetns(t *testing.T, name string) {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run() // left over from a killed run
	ip(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
}

// inNetns runs f on a thread switched into network namespace name. The
// thread is never unlocked, so it dies with the goroutine instead of
// carrying the namespace back into the Go scheduler's pool.
func inNetns(t *testing.T, name string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// arpSeen is one ARP packet read on the peer.
type arpSeen struct {
	op       uint16
	sha      net.HardwareAddr
	spa, tpa netip.Addr
}

// parseARP reads an Ethernet frame carrying IPv4-over-Ethernet ARP.
func parseARP(f []byte) (arpSeen, bool) {
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x06 {
		return arpSeen{}, false
	}
	a := f[14:]
	if a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 {
		return arpSeen{}, false
	}
	return arpSeen{
		op:  uint16(a[6])<<8 | uint16(a[7]),
		sha: net.HardwareAddr(bytes.Clone(a[8:14])),
		spa: netip.AddrFrom4([4]byte(a[14:18])),
		tpa: netip.AddrFrom4([4]byte(a[24:28])),
	}, true
}

// TestVIPInNetworkNamespaces adds a VIP on one end of a veth pair in a
// namespace of its own and watches the gratuitous ARP arrive at the other
// end, in a second namespace.
func TestVIPInNetworkNamespaces(t *testing.T) {
	needRoot(t)
	need(t, "ip")
	ctx := testCtx(t)
	id := os.Getpid() % 100000
	nsA, nsB := fmt.Sprintf("hatui-vip-a%d", id), fmt.Sprintf("hatui-vip-b%d", id)
	ifA, ifB := fmt.Sprintf("hva%d", id), fmt.Sprintf("hvb%d", id)
	addNetns(t, nsA)
	addNetns(t, nsB)
	ip(t, "link", "add", ifA, "type", "veth", "peer", "name", ifB)
	ip(t, "link", "set", ifA, "netns", nsA)
	ip(t, "link", "set", ifB, "netns", nsB)
	ip(t, "-n", nsA, "link", "set", ifA, "up")
	ip(t, "-n", nsB, "link", "set", ifB, "up")

	// The peer listens for ARP before the VIP starts.
	var sock int
	inNetns(t, nsB, func() error {
		ifi, err := net.InterfaceByName(ifB)
		if err != nil {
			return err
		}
		sock, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		return unix.Bind(sock, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	})
	defer unix.Close(sock)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	vip := netip.MustParseAddr("198.51.100.10")
	r := mustNew(t, Spec{Name: "vip", Type: "vip", Params: map[string]string{
		"ip": "198.51.100.10/24", "interface": ifA, "arp_count": "2", "arp_interval": "20ms"}})

	var mac net.HardwareAddr
	var before, running, again Status
	inNetns(t, nsA, func() error {
		ifi, err := net.InterfaceByName(ifA)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		before = r.Monitor(ctx)
		if err := r.Start(ctx); err != nil {
			return err
		}
		running = r.Monitor(ctx)
		if err := r.Start(ctx); err != nil {
			return fmt.Errorf("second start (address already there) = %w", err)
		}
		again = r.Monitor(ctx)
		return nil
	})
	if before.State != StateStopped {
		t.Errorf("monitor before start = %v, want stopped", before)
	}
	if running.State != StateRunning || again.State != StateRunning {
		t.Errorf("monitor after start = %v / %v, want running", running, again)
	}
	if out := ip(t, "-n", nsA, "-4", "addr", "show", "dev", ifA); !strings.Contains(out, "inet 198.51.100.10/24 brd 198.51.100.255") {
		t.Fatalf("ip addr show does not list the VIP with its broadcast:\n%s", out)
	}

	// Two rounds of request and reply from each Start: at least four
	// announcements with sender = target = VIP from the interface's MAC.
	var ops = map[uint16]int{}
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 2048)
	for (ops[arpRequest] < 2 || ops[arpReply] < 2) && time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			continue
		}
		a, ok := parseARP(buf[:n])
		if !ok || a.spa != vip {
			continue
		}
		if a.tpa != vip || !bytes.Equal(a.sha, mac) {
			t.Fatalf("ARP for the VIP is not gratuitous: %+v (want sender=target=%s from %s)", a, vip, mac)
		}
		ops[a.op]++
	}
	if ops[arpRequest] < 2 || ops[arpReply] < 2 {
		t.Fatalf("gratuitous ARP seen on the peer: %d requests, %d replies; want at least 2 of each", ops[arpRequest], ops[arpReply])
	}

	var stopped Status
	inNetns(t, nsA, func() error {
		if err := r.Stop(ctx); err != nil {
			return err
		}
		if err := r.Stop(ctx); err != nil {
			return fmt.Errorf("second stop (address already gone) = %w", err)
		}
		stopped = r.Monitor(ctx)
		return nil
	})
	if stopped.State != StateStopped {
		t.Errorf("monitor after stop = %v", stopped)
	}
	if out := ip(t, "-n", nsA, "-4", "addr", "show", "dev", ifA); strings.Contains(out, "198.51.100.10") {
		t.Fatalf("VIP still present after stop:\n%s", out)
	}

	// A down interface and a missing one are clear errors.
	ip(t, "-n", nsA, "link", "set", ifA, "down")
	missing := mustNew(t, Spec{Name: "vip2", Type: "vip", Params: map[string]string{"ip": "198.51.100.11/24", "interface": "nosuch0"}})
	var downErr, missErr error
	var missSt Status
	inNetns(t, nsA, func() error {
		downErr = r.Start(ctx)
		missErr = missing.Start(ctx)
		missSt = missing.Monitor(ctx)
		return nil
	})
	if downErr == nil || !strings.Contains(downErr.Error(), "is down") {
		t.Errorf("start on a down interface = %v, want an error saying it is down", downErr)
	}
	if missErr == nil || !strings.Contains(missErr.Error(), "nosuch0 not found") {
		t.Errorf("start on a missing interface = %v", missErr)
	}
	if missSt.State != StateFailed {
		t.Errorf("monitor on a missing interface = %v, want failed", missSt)
	}
}

func TestGratuitousARPFrame(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("198.51.100.10")
	for _, op := range []uint16{arpRequest, arpReply} {
		f := GratuitousARP(mac, vip, op)
		if len(f) != 60 || !bytes.Equal(f[0:6], broadcastMAC) || !bytes.Equal(f[6:12], mac) {
			t.Fatalf("op %d: bad Ethernet header % x", op, f[:14])
		}
		a, ok := parseARP(f)
		if !ok || a.op != op || a.spa != vip || a.tpa != vip || !bytes.Equal(a.sha, mac) {
			t.Fatalf("op %d: parsed %+v", op, a)
		}
	}
	if GratuitousARP(mac, netip.MustParseAddr("2001:db8::1"), arpRequest) != nil || GratuitousARP(mac[:4], vip, arpRequest) != nil {
		t.Fatal("GratuitousARP accepted an IPv6 address or a short MAC")
	}
}

// TestVIPInUseProbe: a host that has the address answers the ARP probe of
// one about to add it, in another namespace on the same link, and the
// probe names its MAC; once the address is gone, nobody answers. The
// probe's own frames carry sender address 0.0.0.0, so the host that has
// the address learns no neighbour entry from them.
func TestVIPInUseProbe(t *testing.T) {
	needRoot(t)
	need(t, "ip")
	ctx := testCtx(t)
	id := os.Getpid() % 100000
	nsA, nsB := fmt.Sprintf("hatui-arp-a%d", id), fmt.Sprintf("hatui-arp-b%d", id)
	ifA, ifB := fmt.Sprintf("hpa%d", id), fmt.Sprintf("hpb%d", id)
	addNetns(t, nsA)
	addNetns(t, nsB)
	ip(t, "link", "add", ifA, "type", "veth", "peer", "name", ifB)
	ip(t, "link", "set", ifA, "netns", nsA)
	ip(t, "link", "set", ifB, "netns", nsB)
	ip(t, "-n", nsA, "link", "set", ifA, "up")
	ip(t, "-n", nsB, "link", "set", ifB, "up")
	ip(t, "-n", nsA, "addr", "add", "198.51.100.20/24", "dev", ifA)
	var macA string
	inNetns(t, nsA, func() error {
		ifi, err := net.InterfaceByName(ifA)
		if err == nil {
			macA = ifi.HardwareAddr.String()
		}
		return err
	})

	r := mustNew(t, Spec{Name: "vip", Type: "vip", Params: map[string]string{"ip": "198.51.100.20/24", "interface": ifB}})
	probe := func() (string, time.Duration) {
		var who string
		var took time.Duration
		inNetns(t, nsB, func() error {
			start := time.Now()
			var err error
			who, err = InUse(ctx, r)
			took = time.Since(start)
			return err
		})
		return who, took
	}
	who, took := probe()
	if want := "198.51.100.20 still answers ARP on " + ifB + " (from " + macA + ")"; who != want {
		t.Fatalf("probe with the address on the other host: %q, want %q", who, want)
	}
	t.Logf("found in %v: %s", took.Round(time.Millisecond), who)
	if out := ip(t, "-n", nsA, "neigh", "show", "dev", ifA); strings.TrimSpace(out) != "" {
		t.Errorf("the probed host learnt a neighbour from the probe: %s", out)
	}

	ip(t, "-n", nsA, "addr", "del", "198.51.100.20/24", "dev", ifA)
	who, took = probe()
	if who != "" {
		t.Fatalf("probe with the address gone: %q, want nobody", who)
	}
	want := time.Duration(DefaultProbeCount) * DefaultProbeInterval
	if took < want {
		t.Errorf("a probe that found nobody took %v, less than its %d probes %v apart", took, DefaultProbeCount, DefaultProbeInterval)
	}

	// probe_count = 0 turns it off; other types cannot tell.
	off := mustNew(t, Spec{Name: "vip0", Type: "vip", Params: map[string]string{"ip": "198.51.100.20/24", "interface": ifB, "probe_count": "0"}})
	ip(t, "-n", nsA, "addr", "add", "198.51.100.20/24", "dev", ifA)
	inNetns(t, nsB, func() error {
		if who, err := InUse(ctx, off); who != "" || err != nil {
			return fmt.Errorf("probe_count 0: %q, %v; want no probe", who, err)
		}
		return nil
	})
}

// TestARPProbeFrame: an RFC 5227 probe is a broadcast request for the
// address with sender address 0.0.0.0 and a zero target MAC.
func TestARPProbeFrame(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("198.51.100.10")
	f := ARPProbe(mac, vip)
	p, err := DecodeARP(f)
	if err != nil || len(f) != 60 {
		t.Fatalf("DecodeARP(probe) = %v (len %d)", err, len(f))
	}
	if p.Op != arpRequest || !bytes.Equal(p.EtherDst, broadcastMAC) || !bytes.Equal(p.EtherSrc, mac) || !bytes.Equal(p.SenderMAC, mac) ||
		p.SenderIP != netip.IPv4Unspecified() || p.TargetIP != vip || !bytes.Equal(p.TargetMAC, make([]byte, 6)) {
		t.Fatalf("probe decodes as %+v", p)
	}
	if p.claims(vip, net.HardwareAddr{2, 0, 0, 0, 0, 2}) {
		t.Error("another host's probe counted as a claim on the address")
	}
	if g, _ := DecodeARP(GratuitousARP(mac, vip, arpReply)); !g.claims(vip, net.HardwareAddr{2, 0, 0, 0, 0, 2}) || g.claims(vip, mac) {
		t.Error("an announcement from another MAC is a claim, one from our own is not")
	}
	if _, err := DecodeARP(f[:41]); err != ErrNotARP {
		t.Errorf("short frame: %v", err)
	}
}
