//go:build linux

package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// The partitions are nftables rules inside the hosts' own namespaces, in
// table "inet netlab" (and, for Isolate, "netdev netlab"), rewritten whole
// and atomically from the lab's state after every change. Traffic is
// dropped where it arrives (input hook), or on the wire (netdev egress),
// never at the sender's output hook: a send into a cut network succeeds and
// the packet is lost, as on a real cut, instead of failing with EPERM.

// Cut drops all traffic between a and b, both ways: each drops what comes
// from the other. On a shared net the other's MAC addresses are matched,
// so addresses it gains later (a VIP) are cut too, and an address that
// moves away from it to a third host is not. Across a router the other's
// addresses outside the shared nets' ranges, as they are at the time of
// the call, are matched: an address it gains later is not cut until the
// next Cut, and one that moves on to a third host stays cut. Loopback
// traffic is never touched. Cutting a pair twice is the same as once. Only
// the delivery to a and b is cut: when one of them is a router it still
// forwards the other's traffic.
func (l *Lab) Cut(a, b *Host) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if a == b || a.lab != l || b.lab != l {
		l.fatalf("Cut(%s, %s): want two different hosts of this lab", a.name, b.name)
	}
	l.cuts[[2]*Host{a, b}] = true
	l.cuts[[2]*Host{b, a}] = true
	l.applyRules()
}

// Heal undoes Cut(a, b), and only that: other cuts and isolations stay.
// Healing a pair that is not cut does nothing.
func (l *Lab) Heal(a, b *Host) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.cuts, [2]*Host{a, b})
	delete(l.cuts, [2]*Host{b, a})
	l.applyRules()
}

// Isolate drops all of h's traffic except loopback: nothing arrives at h,
// and nothing h sends reaches the wire (sends still succeed, as on an
// unplugged cable; ARP is dropped too). Isolating twice is the same as
// once.
func (h *Host) Isolate() {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	h.isolated = true
	l.applyRules()
}

// Rejoin undoes Isolate; cuts made with Lab.Cut stay.
func (h *Host) Rejoin() {
	l := h.lab
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	h.isolated = false
	l.applyRules()
}

// applyRules writes the rules of every host whose rules changed.
func (l *Lab) applyRules() {
	l.t.Helper()
	for _, h := range l.hosts {
		if h == l.sw {
			continue
		}
		script, err := l.rules(h)
		if err != nil {
			l.fatalf("%v", err)
		}
		if script == h.applied {
			continue
		}
		text := script
		if text == "" {
			text = "table inet netlab {}\ndelete table inet netlab\ntable netdev netlab {}\ndelete table netdev netlab\n"
		}
		cmd := h.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			l.fatalf("nft in %s: %v: %s\n%s", h.name, err, out, text)
		}
		h.applied = script
	}
}

// rules returns the whole nft script for h, or "" when h has no cut and is
// not isolated.
func (l *Lab) rules(h *Host) (string, error) {
	var peers []*Host
	for _, o := range l.hosts {
		if l.cuts[[2]*Host{h, o}] {
			peers = append(peers, o)
		}
	}
	if len(peers) == 0 && !h.isolated {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("table inet netlab {}\ndelete table inet netlab\n")
	b.WriteString("table netdev netlab {}\ndelete table netdev netlab\n")
	b.WriteString("table inet netlab {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n")
	b.WriteString("\t\tiifname \"lo\" accept\n")
	if h.isolated {
		b.WriteString("\t\tdrop\n")
	}
	for _, p := range peers {
		fmt.Fprintf(&b, "\t\t# cut from %s\n", p.name)
		var macs []string
		for _, f := range p.ifaces {
			macs = append(macs, f.mac())
		}
		if len(macs) > 0 {
			fmt.Fprintf(&b, "\t\tether saddr { %s } drop\n", strings.Join(macs, ", "))
		}
		addrs, err := p.Addrs()
		if err != nil {
			return "", fmt.Errorf("cutting %s from %s: %w", h.name, p.name, err)
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		var v4, v6 []string
		for _, a := range addrs {
			switch {
			case a.IsLoopback() || a.IsUnspecified() || sharedRange(h, p, a):
			case a.Is4():
				v4 = append(v4, a.String())
			default:
				v6 = append(v6, a.String())
			}
		}
		if len(v4) > 0 {
			fmt.Fprintf(&b, "\t\tip saddr { %s } drop\n", strings.Join(v4, ", "))
		}
		if len(v6) > 0 {
			fmt.Fprintf(&b, "\t\tip6 saddr { %s } drop\n", strings.Join(v6, ", "))
		}
	}
	b.WriteString("\t}\n}\n")
	if h.isolated && len(h.ifaces) > 0 {
		b.WriteString("table netdev netlab {\n")
		for _, f := range h.ifaces {
			fmt.Fprintf(&b, "\tchain egress_%s {\n\t\ttype filter hook egress device %q priority 0; policy drop;\n\t}\n", f.name, f.name)
		}
		b.WriteString("}\n")
	}
	return b.String(), nil
}

// mac returns the MAC address the lab gave the host's end of f: locally
// administered, unique in the lab, readable in a capture
// (02:6c:HH:HH:00:II for host HHHH, interface II).
func (f *iface) mac() string {
	return fmt.Sprintf("02:6c:%02x:%02x:00:%02x", f.host.idx>>8&0xff, f.host.idx&0xff, f.n)
}

// portMAC returns the MAC address of the switch's end of f.
func (f *iface) portMAC() string {
	return fmt.Sprintf("02:6c:%02x:%02x:01:%02x", f.host.idx>>8&0xff, f.host.idx&0xff, f.n)
}

// sharedRange reports whether a lies in the range of a net both h and p
// are on: there the MAC match covers p, and an address match would go on
// cutting a VIP after it moved from p to a third host.
func sharedRange(h, p *Host, a netip.Addr) bool {
	for _, f := range p.ifaces {
		if h.on(f.net) && f.net.prefix.Contains(a) {
			return true
		}
	}
	return false
}
