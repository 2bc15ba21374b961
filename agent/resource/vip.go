package resource

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// vip parameters:
//
//	ip            IPv4 address with prefix, such as "192.0.2.10/24" (required)
//	interface     the interface to put it on, such as "eth0" (required)
//	arp_count       gratuitous ARP rounds after adding the address (default 3, 0 sends none)
//	arp_interval    time between rounds (default 200ms)
//	probe_count     ARP probes sent before the address is added, to find a
//	                host that still has it (default 3, 0 sends none)
//	probe_interval  time between probes, and the wait after the last (default 50ms)
//
// The address is added and removed through rtnetlink directly rather than
// by running ip(8): the monitor runs every few seconds on every node and a
// netlink dump costs no fork; the kernel's errno (EEXIST, EADDRNOTAVAIL)
// says exactly whether the address was already there, which makes start
// and stop idempotent without parsing ip's human-oriented output; and the
// agent does not depend on iproute2 being installed or on its output
// format. Each round of gratuitous ARP is an ARP request and an ARP reply
// with sender and target address both the VIP, sent from the interface's
// MAC to the broadcast address over an AF_PACKET socket, so that switches
// and neighbours update their tables whichever of the two they honour.
//
// Before the address is added anywhere, InUse probes for it as RFC 5227
// (and arping -D) does: ARP requests for the VIP with sender address
// 0.0.0.0, so that no neighbour learns anything from them, and any ARP
// packet from another MAC whose sender address is the VIP means a host
// still has it (a holder whose agent died, with the address still up). The
// probe is Go over the same AF_PACKET socket as the announcements rather
// than arping: no binary to install (iputils and Thomas Habets' arping
// differ in options and exit codes), no output to parse, and it runs on
// the calling thread, so inside whatever network namespace that is. The
// RFC's timing (three probes 1–2 s apart) is for self-assigned addresses;
// a takeover pays for every millisecond, and a host that has the address
// answers within a millisecond on a LAN, so the default is three probes
// 50 ms apart and 50 ms more for the answers: 150 ms.
var vipKeys = []string{"ip", "interface", "arp_count", "arp_interval", "probe_count", "probe_interval"}

// Defaults for gratuitous ARP and the probe before adding the address.
const (
	DefaultARPCount      = 3
	DefaultARPInterval   = 200 * time.Millisecond
	DefaultProbeCount    = 3
	DefaultProbeInterval = 50 * time.Millisecond
)

type vipConfig struct {
	prefix        netip.Prefix
	iface         string
	arpCount      int
	arpInterval   time.Duration
	probeCount    int
	probeInterval time.Duration
}

func parseVIP(spec Spec) (vipConfig, error) {
	cfg := vipConfig{arpCount: DefaultARPCount, arpInterval: DefaultARPInterval, probeCount: DefaultProbeCount, probeInterval: DefaultProbeInterval}
	bad := func(key, problem, want string) error {
		return &ConfigError{Resource: spec.Name, Key: key, Problem: problem, Want: want}
	}
	const ipWant = "an IPv4 address with prefix length, such as 192.0.2.10/24"
	s, ok := spec.Params["ip"]
	if !ok || s == "" {
		return cfg, bad("ip", "missing", ipWant)
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return cfg, bad("ip", fmt.Sprintf("%q is not an address with prefix", s), ipWant)
	}
	a := p.Addr()
	switch {
	case !a.Is4():
		return cfg, bad("ip", fmt.Sprintf("%q is not IPv4", s), ipWant)
	case p.Bits() < 1:
		return cfg, bad("ip", fmt.Sprintf("prefix length /%d is too short", p.Bits()), ipWant)
	case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return cfg, bad("ip", fmt.Sprintf("%s cannot be a service address", a), ipWant)
	case p.Bits() < 31 && a == lastAddr(p):
		return cfg, bad("ip", fmt.Sprintf("%s is the broadcast address of %s", a, p.Masked()), ipWant)
	case p.Bits() < 31 && a == p.Masked().Addr():
		return cfg, bad("ip", fmt.Sprintf("%s is the network address of %s", a, p.Masked()), ipWant)
	}
	cfg.prefix = p

	cfg.iface = spec.Params["interface"]
	const ifWant = "an interface name such as eth0 (at most 15 characters, no '/', ':' or spaces)"
	switch {
	case cfg.iface == "":
		return cfg, bad("interface", "missing", ifWant)
	case len(cfg.iface) > 15 || strings.ContainsAny(cfg.iface, "/: \t\n\x00") || cfg.iface == "." || cfg.iface == "..":
		return cfg, bad("interface", fmt.Sprintf("%q is not an interface name", cfg.iface), ifWant)
	}

	for _, c := range []struct {
		key, want string
		n         *int
	}{
		{"arp_count", "a number of gratuitous ARP rounds, such as 3", &cfg.arpCount},
		{"probe_count", "a number of ARP probes before the address is added, such as 3 (0: none)", &cfg.probeCount},
	} {
		if v, ok := spec.Params[c.key]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 || n > 100 {
				return cfg, bad(c.key, fmt.Sprintf("%q is not a count from 0 to 100", v), c.want)
			}
			*c.n = n
		}
	}
	for _, c := range []struct {
		key, want string
		d         *time.Duration
	}{
		{"arp_interval", "a duration such as \"200ms\"", &cfg.arpInterval},
		{"probe_interval", "a duration such as \"50ms\"", &cfg.probeInterval},
	} {
		if v, ok := spec.Params[c.key]; ok {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || d < 10*time.Millisecond || d > 10*time.Second {
				return cfg, bad(c.key, fmt.Sprintf("%q is not a duration from 10ms to 10s", v), c.want)
			}
			*c.d = d
		}
	}
	return cfg, nil
}

// lastAddr is the highest address of p (its IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ARP operations.
const (
	arpRequest = 1
	arpReply   = 2
)

var broadcastMAC = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ARPProbe builds RFC 5227's ARP probe for ip from mac: a broadcast ARP
// request whose sender protocol address is 0.0.0.0 (so that no neighbour
// updates its cache from it) and whose target is ip, padded to 60 bytes.
// It returns nil unless mac is 6 bytes and ip is IPv4.
func ARPProbe(mac []byte, ip netip.Addr) []byte {
	f := GratuitousARP(mac, ip, arpRequest)
	if f == nil {
		return nil
	}
	clear(f[14+14 : 14+18]) // sender protocol address
	return f
}

// ARPPacket is an IPv4-over-Ethernet ARP packet.
type ARPPacket struct {
	// EtherDst and EtherSrc are the Ethernet header's addresses.
	EtherDst, EtherSrc []byte
	Op                 uint16
	SenderMAC          []byte
	SenderIP           netip.Addr
	TargetMAC          []byte
	TargetIP           netip.Addr
}

// ErrNotARP is returned by DecodeARP for a frame that is not an
// IPv4-over-Ethernet ARP packet.
var ErrNotARP = errors.New("not an IPv4 over Ethernet ARP frame")

// DecodeARP reads an Ethernet frame carrying an ARP packet for IPv4 over
// Ethernet. Anything else (too short, another EtherType, other hardware
// or protocol types) is ErrNotARP. The slices point into f.
func DecodeARP(f []byte) (ARPPacket, error) {
	if len(f) < 14+28 || f[12] != 0x08 || f[13] != 0x06 {
		return ARPPacket{}, ErrNotARP
	}
	a := f[14:]
	if a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 {
		return ARPPacket{}, ErrNotARP
	}
	return ARPPacket{
		Op:        uint16(a[6])<<8 | uint16(a[7]),
		SenderMAC: a[8:14],
		SenderIP:  netip.AddrFrom4([4]byte(a[14:18])),
		TargetMAC: a[18:24],
		TargetIP:  netip.AddrFrom4([4]byte(a[24:28])),
		EtherDst:  f[0:6],
		EtherSrc:  f[6:12],
	}, nil
}

// claims reports whether p says that a host other than mine has ip: any
// ARP packet (request, reply, announcement) whose sender address is ip,
// sent from another MAC. A probe from another host (sender 0.0.0.0) does
// not count: it only says that someone else is about to take ip, which
// the decision log rules out.
func (p ARPPacket) claims(ip netip.Addr, mine []byte) bool {
	return p.SenderIP == ip && !bytes.Equal(p.SenderMAC, mine) && !bytes.Equal(p.EtherSrc, mine)
}

// GratuitousARP builds the Ethernet frame announcing that ip is at mac:
// an ARP packet (op 1 request or 2 reply) whose sender and target
// protocol addresses are both ip, broadcast, padded to the 60-byte
// Ethernet minimum. A request carries a zero target hardware address
// (RFC 5227's ARP announcement), a reply the broadcast address.
// It returns nil unless mac is 6 bytes and ip is IPv4.
func GratuitousARP(mac []byte, ip netip.Addr, op uint16) []byte {
	if len(mac) != 6 || !ip.Is4() {
		return nil
	}
	f := make([]byte, 60)
	copy(f[0:6], broadcastMAC)
	copy(f[6:12], mac)
	f[12], f[13] = 0x08, 0x06 // EtherType ARP
	a := f[14:]
	a[0], a[1] = 0, 1 // hardware type Ethernet
	a[2], a[3] = 0x08, 0x00
	a[4], a[5] = 6, 4
	a[6], a[7] = byte(op>>8), byte(op)
	ip4 := ip.As4()
	copy(a[8:14], mac)
	copy(a[14:18], ip4[:])
	if op == arpReply {
		copy(a[18:24], broadcastMAC)
	}
	copy(a[24:28], ip4[:])
	return f
}
