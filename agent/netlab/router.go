//go:build linux

package netlab

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Delay detour: packets a router forwards can be sent through a TUN device
// whose other end is this process, which holds each packet for the delay
// and writes it back. Policy routing does the steering:
//
//	ip rule iif ethX lookup 100   (every lab interface of the router)
//	ip route default dev dly0 table 100
//	ip rule iif dly0 lookup main  (back out, routed as usual)
//
// The local table comes first in the rule list, so traffic to the router
// itself is never delayed. The kernel has no netem here; this is the
// userspace stand-in.
const (
	delayDev   = "dly0"
	delayTable = "100"
	delayPref  = "100"
	// delayQueue bounds the packets held: at 40 ms and 1500-byte packets
	// that is about 5 Gbit/s, far above what the delay line can carry.
	delayQueue = 16384
)

// Router is a host that forwards between the nets it is attached to, with
// an optional one-way delay (SetDelay). Every Host method works on it.
type Router struct {
	*Host

	delay atomic.Int64 // nanoseconds, read per packet

	mu     sync.Mutex // guards the fields below
	tun    *os.File
	detour bool // the ip rules steering packets into the TUN are in place
	stop   chan struct{}
	wg     sync.WaitGroup
}

// Router makes a host named name attached to each net in attach with the
// given address (interfaces eth0, eth1, ... in the order the nets were
// made), with forwarding on and reverse-path filtering off. Every host on
// one of these nets, now or attached later, gets a route to the router's
// other nets through the router's address on its own net (unless another
// router or a Route already gave it one). Routers on a shared net route to
// each other's nets likewise; longer paths need Route.
func (l *Lab) Router(name string, attach map[*Net]string) *Router {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(attach) < 2 {
		l.fatalf("router %s: want at least two nets, got %d", name, len(attach))
	}
	h := l.host(name)
	err := h.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv4/ip_forward":              "1",
			"net/ipv4/conf/all/rp_filter":      "0",
			"net/ipv4/conf/default/rp_filter":  "0",
			"net/ipv6/conf/all/forwarding":     "1",
			"net/ipv6/conf/default/forwarding": "1",
		})
	})
	if err != nil {
		l.fatalf("router %s: %v", name, err)
	}
	r := &Router{Host: h}
	h.router = r
	nets := make([]*Net, 0, len(attach))
	for n := range attach {
		nets = append(nets, n)
	}
	slices.SortFunc(nets, func(a, b *Net) int { return a.idx - b.idx })
	for _, n := range nets {
		h.attach(n, attach[n])
	}
	l.routers = append(l.routers, r)
	for _, o := range l.hosts {
		l.autoRoutes(o)
	}
	l.applyRules()
	return r
}

// attached is called (with lab.mu held) for every new interface of the
// router: reverse-path filtering off, and the delay detour if it is on.
func (r *Router) attached(f *iface) {
	l := r.lab
	l.t.Helper()
	err := r.Do(func() error {
		return writeSysctls(map[string]string{"net/ipv4/conf/" + f.name + "/rp_filter": "0"})
	})
	if err != nil {
		l.fatalf("router %s: %v", r.name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.detour {
		r.rules("add", []*iface{f})
	}
}

// SetDelay makes r hold every packet it forwards for d before sending it on
// (one way: a round trip through r takes 2d more). Packets leave in the
// order they came. SetDelay(0) takes the detour away, so forwarding is the
// kernel's alone again; packets already held still leave at their time.
// UDP and TCP of any kind pass; one TCP stream through 40 ms each way
// made 20 to 50 Mbit/s on a busy 2-core machine. The delay line runs in
// the test process: when the machine is overloaded, packets can be held
// longer (see BenchmarkDelayAccuracy), never shorter.
func (r *Router) SetDelay(d time.Duration) {
	l := r.lab
	l.t.Helper()
	if d < 0 {
		l.fatalf("router %s: negative delay %v", r.name, d)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay.Store(int64(d))
	if d == 0 {
		if r.detour {
			r.rules("del", r.ifaces)
			r.detour = false
		}
		return
	}
	if r.tun == nil {
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			lack(l.t, fmt.Sprintf("netlab's delay needs /dev/net/tun (%v)", err))
		}
		r.startTUN()
	}
	if !r.detour {
		r.rules("add", r.ifaces)
		r.detour = true
	}
}

// Delay returns the delay set by SetDelay.
func (r *Router) Delay() time.Duration { return time.Duration(r.delay.Load()) }

// rules adds or deletes the policy rules that steer packets arriving on
// ifaces into the TUN device.
func (r *Router) rules(op string, ifaces []*iface) {
	r.lab.t.Helper()
	for _, fam := range []string{"-4", "-6"} {
		var lines []string
		for _, f := range ifaces {
			lines = append(lines, fmt.Sprintf("rule %s iif %s lookup %s pref %s", op, f.name, delayTable, delayPref))
		}
		r.lab.batch(r.ns, fam, lines...)
	}
}

// startTUN makes the TUN device in r's namespace, its routes and rules, and
// the two goroutines that carry packets through the delay.
func (r *Router) startTUN() {
	l := r.lab
	l.t.Helper()
	var tun *os.File
	err := r.Do(func() error {
		// The device belongs to the namespace of the thread that opens
		// the clone device.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(delayDev)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("making TUN device %s: %w", delayDev, err)
		}
		// Non-blocking, so reads go through Go's poller and Close ends
		// a pending Read.
		tun = os.NewFile(uintptr(fd), "/dev/net/tun")
		return writeSysctls(map[string]string{"net/ipv4/conf/" + delayDev + "/rp_filter": "0"})
	})
	if err != nil {
		if tun != nil {
			tun.Close()
		}
		l.fatalf("router %s: %v", r.name, err)
	}
	r.tun = tun
	l.batch(r.ns, "",
		"link set "+delayDev+" mtu 1500 txqueuelen 1000 up",
		"route add default dev "+delayDev+" table "+delayTable,
		"rule add iif "+delayDev+" lookup main pref 99")
	l.batch(r.ns, "-6",
		"route add default dev "+delayDev+" table "+delayTable,
		"rule add iif "+delayDev+" lookup main pref 99")

	r.stop = make(chan struct{})
	q := make(chan heldPacket, delayQueue)
	r.wg.Add(2)
	go r.readLoop(q)
	go r.writeLoop(q)
}

// heldPacket is one packet in the delay line.
type heldPacket struct {
	due  time.Time
	data []byte
}

// readLoop takes packets from the TUN device and stamps each with the time
// it may leave. Since the delay is the same for all, the channel is already
// in order of leaving: a FIFO is the whole scheduler.
func (r *Router) readLoop(q chan<- heldPacket) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := r.tun.Read(buf)
		if err != nil {
			return // closed at cleanup
		}
		p := heldPacket{due: time.Now().Add(time.Duration(r.delay.Load())), data: bytes.Clone(buf[:n])}
		select {
		case q <- p:
		case <-r.stop:
			return
		}
	}
}

// writeLoop sends each packet back into the TUN device at its time. When
// the delay was shortened, later packets wait for earlier ones: order is
// kept.
func (r *Router) writeLoop(q <-chan heldPacket) {
	defer r.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var p heldPacket
		select {
		case p = <-q:
		case <-r.stop:
			return
		}
		// Go's timers wake up to a millisecond late (the poller waits
		// in whole milliseconds), so the timer aims early and a
		// nanosleep, precise to some microseconds, does the rest.
		if wait := time.Until(p.due) - time.Millisecond; wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-r.stop:
				return
			}
		}
		for {
			rest := time.Until(p.due)
			if rest <= 0 {
				break
			}
			ts := unix.NsecToTimespec(rest.Nanoseconds())
			unix.Nanosleep(&ts, nil) // EINTR (Go's preemption signal): loop
		}
		// A failed write is a packet lost, as on a congested link.
		r.tun.Write(p.data)
	}
}

// stopDelay ends the delay goroutines and closes the TUN device.
func (r *Router) stopDelay() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tun == nil {
		return
	}
	close(r.stop)
	r.tun.Close()
	r.wg.Wait()
	r.tun = nil
}
