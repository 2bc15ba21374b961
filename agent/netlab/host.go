//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Host is a network namespace of the lab with lo up. Make it with
// Lab.Host (or Lab.Router) and connect it with Attach.
type Host struct {
	lab  *Lab
	name string
	ns   string
	idx  int

	// nsfd is /run/netns/<ns>, held open so Do never opens a file; -1
	// once the lab is cleaned up (then Do fails instead of entering
	// whatever namespace the number may name by then).
	nsMu  sync.RWMutex
	nsfd  int
	nsIno uint64 // the namespace's inode, to recognise its processes

	// Guarded by lab.mu.
	ifaces   []*iface
	routes   []route
	isolated bool
	applied  string  // the nft script in force, "" for none
	router   *Router // set when the host is a router

	nlMu sync.Mutex
	nl   *nlConn // for HasAddr, made on first use
}

// iface is one attachment of a host to a net.
type iface struct {
	host *Host
	n    int    // position in host.ifaces
	name string // on the host: eth0, eth1, ...
	port string // the other end, in the switch namespace
	net  *Net
	addr netip.Prefix
}

// route is one route the lab set on a host, kept so LinkUp can put it back
// (the kernel drops routes through a link that goes down).
type route struct {
	dst netip.Prefix
	via netip.Addr
}

// Host makes a host named name (a new network namespace with lo up).
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.host(name)
}

func (l *Lab) host(name string) *Host {
	l.t.Helper()
	if !validName.MatchString(name) || name == switchName {
		l.fatalf("host name %q: want [a-z][a-z0-9-]*, at most 32 characters, not %q", name, switchName)
	}
	for _, h := range l.hosts {
		if h.name == name {
			l.fatalf("host %s made twice", name)
		}
	}
	return l.newNS(name)
}

// Name returns the host's name as given to Lab.Host.
func (h *Host) Name() string { return h.name }

// NS returns the name of the host's network namespace, for
// `ip netns exec NS ...` and `ip -n NS ...`.
func (h *Host) NS() string { return h.ns }

// String returns the host's name.
func (h *Host) String() string { return h.name }

// Attach connects h to n with a veth pair. The host's end is named eth0,
// eth1, ... in attach order and gets addr (like "10.81.1.2/24", inside n's
// range); the other end is a port of n's bridge. It returns the host's
// interface name. Hosts on a net that has a router get routes to the
// router's other nets (see Lab.Router).
func (h *Host) Attach(n *Net, addr string) string {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	name := h.attach(n, addr)
	if h.router != nil {
		// A router on a new net: everyone may have a new way to go.
		for _, o := range l.hosts {
			l.autoRoutes(o)
		}
	} else {
		l.autoRoutes(h)
	}
	l.applyRules()
	return name
}

func (h *Host) attach(n *Net, addr string) string {
	l := h.lab
	l.t.Helper()
	if n.lab != l {
		l.fatalf("attaching %s to net %s of another lab", h.name, n.name)
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		l.fatalf("attaching %s to %s: address %q: %v (want an address with its prefix length, like 10.81.1.2/24)", h.name, n.name, addr, err)
	}
	if !n.prefix.Contains(p.Addr()) || p.Bits() < n.prefix.Bits() {
		l.fatalf("attaching %s to %s: %s is not inside %s", h.name, n.name, addr, n.prefix)
	}
	for _, f := range h.ifaces {
		if f.net == n {
			l.fatalf("%s is already attached to %s (as %s)", h.name, n.name, f.name)
		}
	}
	for _, o := range l.hosts {
		for _, f := range o.ifaces {
			if f.addr.Addr() == p.Addr() {
				l.fatalf("attaching %s to %s: %s is already %s's address on %s", h.name, n.name, p.Addr(), o.name, f.net.name)
			}
		}
	}
	f := &iface{
		host: h,
		n:    len(h.ifaces),
		name: fmt.Sprintf("eth%d", len(h.ifaces)),
		port: fmt.Sprintf("h%de%d", h.idx, len(h.ifaces)),
		net:  n,
		addr: p,
	}
	// Both ends are made straight in their namespaces: nothing of the
	// lab ever appears in the root namespace.
	l.ip("link", "add", f.name, "netns", h.ns, "address", f.mac(), "mtu", "1500", "type", "veth",
		"peer", "name", f.port, "netns", l.sw.ns, "address", f.portMAC(), "mtu", "1500")
	l.batch(l.sw.ns, "",
		"link set "+f.port+" master "+n.bridge,
		"link set "+f.port+" up")
	l.batch(h.ns, "",
		"addr add "+p.String()+" dev "+f.name,
		"link set "+f.name+" up")
	h.ifaces = append(h.ifaces, f)
	if h.router != nil {
		h.router.attached(f)
	}
	return f.name
}

// iface returns h's attachment to n, ending the test when there is none.
func (h *Host) iface(n *Net) *iface {
	h.lab.t.Helper()
	for _, f := range h.ifaces {
		if f.net == n {
			return f
		}
	}
	h.lab.fatalf("%s is not attached to net %s", h.name, n.name)
	return nil
}

// IP returns h's address on n, without the prefix length.
func (h *Host) IP(n *Net) string {
	h.lab.t.Helper()
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	return h.iface(n).addr.Addr().String()
}

// Iface returns the name of h's interface on n (eth0, eth1, ...).
func (h *Host) Iface(n *Net) string {
	h.lab.t.Helper()
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	return h.iface(n).name
}

// Command returns a command that runs name with args inside h's namespace,
// through `ip netns exec`: the program (exec'd by ip, so the pid is the
// program's) sees the host's interfaces in /sys/class/net and /proc/net,
// in a mount namespace of its own. Set Env, Dir, Stdin as usual; a PATH
// lookup of name happens inside, with the command's PATH. Run it with
// Start to have it killed at cleanup.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(h.lab.ipPath, append([]string{"netns", "exec", h.ns, name}, args...)...)
}

// Do runs f on an OS thread switched into h's namespace and returns its
// error. Sockets f opens belong to the namespace and may be used from any
// goroutine afterwards. The thread is switched back afterwards, or, if that
// fails, ended. Do may be called from any goroutine.
//
// Only what f does itself happens inside: goroutines it starts, and
// sockets opened later (a Serf, memberlist or raft instance dialing out),
// belong to the root namespace. Code that opens sockets as it goes must
// run as a process in the host (Command, Start).
func (h *Host) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening this thread's namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		h.nsMu.RLock()
		err = errClosed
		if h.nsfd >= 0 {
			err = unix.Setns(h.nsfd, unix.CLONE_NEWNET)
		}
		h.nsMu.RUnlock()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering namespace %s: %w", h.ns, err)
			return
		}
		defer func() {
			// A thread left in the wrong namespace must never run
			// other goroutines: keep it locked, and it ends with
			// this goroutine.
			if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		errc <- f()
	}()
	return <-errc
}

// errClosed is the error of Do after the lab's cleanup.
var errClosed = errors.New("the lab is cleaned up")

// closeNS closes h's namespace file; Do fails from then on.
func (h *Host) closeNS() {
	h.nsMu.Lock()
	defer h.nsMu.Unlock()
	if h.nsfd >= 0 {
		unix.Close(h.nsfd)
		h.nsfd = -1
	}
}

// Route makes h reach cidr through the gateway via (an address on one of
// h's nets). Setting a route again replaces it. LinkUp restores the routes
// that LinkDown took away.
func (h *Host) Route(cidr, via string) {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	dst, err := netip.ParsePrefix(cidr)
	if err != nil {
		l.fatalf("route on %s: %v", h.name, err)
	}
	gw, err := netip.ParseAddr(via)
	if err != nil {
		l.fatalf("route on %s: gateway: %v", h.name, err)
	}
	h.route(route{dst: dst.Masked(), via: gw})
}

func (h *Host) route(r route) {
	h.lab.t.Helper()
	h.lab.ip("-n", h.ns, "route", "replace", r.dst.String(), "via", r.via.String())
	h.routes = slices.DeleteFunc(h.routes, func(o route) bool { return o.dst == r.dst })
	h.routes = append(h.routes, r)
}

// LinkDown takes h's interface on n down, as an unplugged cable would: its
// routes go, its addresses stay.
func (h *Host) LinkDown(n *Net) {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ip("-n", h.ns, "link", "set", h.iface(n).name, "down")
}

// LinkUp brings h's interface on n up again and puts back the routes
// through it that the lab set (Route and the routers' routes).
func (h *Host) LinkUp(n *Net) {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	f := h.iface(n)
	l.ip("-n", h.ns, "link", "set", f.name, "up")
	for _, r := range h.routes {
		if f.addr.Masked().Contains(r.via) {
			l.ip("-n", h.ns, "route", "replace", r.dst.String(), "via", r.via.String())
		}
	}
}

// autoRoutes gives h a route to every net of every router that shares a
// net with h, through that router, unless h is on that net itself.
func (l *Lab) autoRoutes(h *Host) {
	l.t.Helper()
	for _, f := range h.ifaces {
		for _, r := range l.routers {
			if r.Host == h {
				continue
			}
			var via netip.Addr
			for _, rf := range r.ifaces {
				if rf.net == f.net {
					via = rf.addr.Addr()
				}
			}
			if !via.IsValid() || via.Is4() != f.addr.Addr().Is4() {
				continue
			}
			for _, rf := range r.ifaces {
				if rf.net == f.net || h.on(rf.net) || rf.net.prefix.Addr().Is4() != via.Is4() {
					continue
				}
				if slices.ContainsFunc(h.routes, func(o route) bool { return o.dst == rf.net.prefix }) {
					continue // the first router, or the test's own Route, wins
				}
				h.route(route{dst: rf.net.prefix, via: via})
			}
		}
	}
}

// on reports whether h is attached to n.
func (h *Host) on(n *Net) bool {
	return slices.ContainsFunc(h.ifaces, func(f *iface) bool { return f.net == n })
}
