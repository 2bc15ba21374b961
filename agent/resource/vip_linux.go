//go:build linux

package resource

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// vipResource holds a virtual IP. Everything runs on the calling
// goroutine, so a caller locked to a thread in another network namespace
// (as the tests are) manages that namespace's interfaces.
type vipResource struct {
	cfg vipConfig
}

func newVIP(spec Spec) (driver, error) {
	cfg, err := parseVIP(spec)
	if err != nil {
		return nil, err
	}
	return &vipResource{cfg: cfg}, nil
}

func (v *vipResource) iface() (*net.Interface, error) {
	ifi, err := net.InterfaceByName(v.cfg.iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s not found (check the interface parameter against ip link): %w", v.cfg.iface, err)
	}
	return ifi, nil
}

func (v *vipResource) start(ctx context.Context) error {
	ifi, err := v.iface()
	if err != nil {
		return err
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("interface %s is down: bring it up (ip link set %s up) before the group starts", ifi.Name, ifi.Name)
	}
	err = addrChange(ctx, unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, ifi.Index, v.cfg.prefix)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", v.cfg.prefix, ifi.Name, err)
	}
	if err := sendGARP(ctx, ifi, v.cfg.prefix.Addr(), v.cfg.arpCount, v.cfg.arpInterval); err != nil {
		return fmt.Errorf("announce %s on %s: %w", v.cfg.prefix.Addr(), ifi.Name, err)
	}
	return nil
}

func (v *vipResource) stop(ctx context.Context) error {
	ifi, err := v.iface()
	if err != nil {
		// No interface, no address on it.
		return nil
	}
	err = addrChange(ctx, unix.RTM_DELADDR, 0, ifi.Index, v.cfg.prefix)
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %s: %w", v.cfg.prefix, ifi.Name, err)
	}
	return nil
}

func (v *vipResource) monitor(ctx context.Context) Status {
	ifi, err := v.iface()
	if err != nil {
		return Status{State: StateFailed, Detail: err.Error()}
	}
	addrs, err := listAddrs(ctx, ifi.Index)
	if err != nil {
		return Status{State: StateFailed, Detail: fmt.Sprintf("list addresses of %s: %v", ifi.Name, err)}
	}
	for _, p := range addrs {
		if p.Addr() != v.cfg.prefix.Addr() {
			continue
		}
		if p.Bits() != v.cfg.prefix.Bits() {
			return Status{State: StateRunning, Detail: fmt.Sprintf("%s on %s (configured /%d)", p, ifi.Name, v.cfg.prefix.Bits())}
		}
		return Status{State: StateRunning, Detail: fmt.Sprintf("%s on %s", p, ifi.Name)}
	}
	if ifi.Flags&net.FlagUp == 0 {
		return Status{State: StateStopped, Detail: fmt.Sprintf("%s is down", ifi.Name)}
	}
	return Status{State: StateStopped, Detail: fmt.Sprintf("%s not on %s", v.cfg.prefix.Addr(), ifi.Name)}
}

// nlConn is a NETLINK_ROUTE socket whose reads end at the context's
// deadline.
type nlConn struct {
	fd  int
	seq uint32
}

func dialNetlink(ctx context.Context) (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	c := &nlConn{fd: fd, seq: uint32(time.Now().UnixNano())}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			c.close()
			return nil, context.DeadlineExceeded
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	return c, nil
}

func (c *nlConn) close() { unix.Close(c.fd) }

// request sends one message and collects the answers: for a request with
// NLM_F_ACK, the acknowledgement (nil messages, or the kernel's errno);
// for a dump, every message up to NLMSG_DONE.
func (c *nlConn) request(typ, flags uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	c.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:4], uint32(unix.SizeofNlMsghdr+len(body)))
	ne.PutUint16(msg[4:6], typ)
	ne.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST)
	ne.PutUint32(msg[8:12], c.seq)
	ne.PutUint32(msg[12:16], 0)
	msg = append(msg, body...)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send netlink request: %w", err)
	}
	var out []syscall.NetlinkMessage
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("no netlink answer: %w", context.DeadlineExceeded)
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read netlink answer: %w", err)
		}
		// Clone: the returned messages point into the bytes parsed, and
		// buf is reused for the next read of a multi-part dump.
		msgs, err := syscall.ParseNetlinkMessage(bytes.Clone(buf[:n]))
		if err != nil {
			return nil, fmt.Errorf("parse netlink answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != c.seq {
				continue // a stale answer to an earlier request
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error message")
				}
				if errno := -int32(ne.Uint32(m.Data[0:4])); errno != 0 {
					return nil, unix.Errno(errno)
				}
				return out, nil
			default:
				out = append(out, m)
			}
		}
	}
}

// addrChange adds (RTM_NEWADDR) or removes (RTM_DELADDR) p on the
// interface with index idx.
func addrChange(ctx context.Context, typ uint16, flags uint16, idx int, p netip.Prefix) error {
	c, err := dialNetlink(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	a := p.Addr().As4()
	body := ifaddrmsg(p.Bits(), idx)
	body = appendAttr(body, unix.IFA_LOCAL, a[:])
	body = appendAttr(body, unix.IFA_ADDRESS, a[:])
	if typ == unix.RTM_NEWADDR && p.Bits() < 31 {
		// As "ip addr add ... brd +" and Pacemaker's IPaddr2 do.
		b := lastAddr(p).As4()
		body = appendAttr(body, unix.IFA_BROADCAST, b[:])
	}
	_, err = c.request(typ, flags|unix.NLM_F_ACK, body)
	return err
}

// listAddrs returns the IPv4 addresses on the interface with index idx.
func listAddrs(ctx context.Context, idx int) ([]netip.Prefix, error) {
	c, err := dialNetlink(ctx)
	if err != nil {
		return nil, err
	}
	defer c.close()
	msgs, err := c.request(unix.RTM_GETADDR, unix.NLM_F_DUMP, ifaddrmsg(0, 0))
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != unix.RTM_NEWADDR || len(m.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		family, bits := m.Data[0], int(m.Data[1])
		index := int(binary.NativeEndian.Uint32(m.Data[4:8]))
		if family != unix.AF_INET || index != idx {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var addr []byte
		for _, at := range attrs {
			switch at.Attr.Type {
			case unix.IFA_LOCAL:
				addr = at.Value
			case unix.IFA_ADDRESS:
				if addr == nil {
					addr = at.Value
				}
			}
		}
		if len(addr) == 4 && bits <= 32 {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte(addr)), bits))
		}
	}
	return out, nil
}

func ifaddrmsg(bits, idx int) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = byte(bits)
	b[2] = 0 // flags
	b[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:8], uint32(idx))
	return b
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	hdr := make([]byte, unix.SizeofRtAttr)
	binary.NativeEndian.PutUint16(hdr[0:2], uint16(l))
	binary.NativeEndian.PutUint16(hdr[2:4], typ)
	b = append(b, hdr...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// htons converts a 16-bit value to network byte order for AF_PACKET.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendGARP announces ip from ifi: count rounds, interval apart, each an
// ARP request and an ARP reply.
func sendGARP(ctx context.Context, ifi *net.Interface, ip netip.Addr, count int, interval time.Duration) error {
	if count == 0 || len(ifi.HardwareAddr) != 6 {
		// No Ethernet address (tun, loopback): no ARP on this link.
		return nil
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("open packet socket: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
	copy(sa.Addr[:], broadcastMAC)
	for i := 0; i < count; i++ {
		if i > 0 {
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		for _, op := range []uint16{arpRequest, arpReply} {
			if err := unix.Sendto(fd, GratuitousARP(ifi.HardwareAddr, ip, op), 0, sa); err != nil {
				return fmt.Errorf("send gratuitous ARP: %w", err)
			}
		}
	}
	return nil
}

// inUse probes for the address on the link before it is added (RFC 5227,
// as arping -D): probeCount ARP probes probeInterval apart, and listening
// until probeInterval after the last, for any ARP packet from another MAC
// whose sender address is the VIP. A down or missing interface, or one
// without an Ethernet address, cannot be probed: nobody is found, and the
// start that follows fails or goes ahead on its own terms.
func (v *vipResource) inUse(ctx context.Context) (string, error) {
	if v.cfg.probeCount == 0 {
		return "", nil
	}
	ifi, err := net.InterfaceByName(v.cfg.iface)
	if err != nil || ifi.Flags&net.FlagUp == 0 || len(ifi.HardwareAddr) != 6 {
		return "", nil
	}
	ip := v.cfg.prefix.Addr()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return "", fmt.Errorf("open packet socket: %w", err)
	}
	defer unix.Close(fd)
	// Bound to the interface: only its ARP traffic is read.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
		return "", fmt.Errorf("bind packet socket to %s: %w", ifi.Name, err)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], broadcastMAC)
	probe := ARPProbe(ifi.HardwareAddr, ip)
	buf := make([]byte, 1500)
	start := time.Now()
	end := start.Add(time.Duration(v.cfg.probeCount) * v.cfg.probeInterval)
	sent := 0
	for {
		now := time.Now()
		if sent < v.cfg.probeCount && !now.Before(start.Add(time.Duration(sent)*v.cfg.probeInterval)) {
			if err := unix.Sendto(fd, probe, 0, to); err != nil {
				return "", fmt.Errorf("send ARP probe on %s: %w", ifi.Name, err)
			}
			sent++
		}
		if who := readClaims(fd, buf, ip, ifi.HardwareAddr); who != "" {
			return fmt.Sprintf("%s still answers ARP on %s (from %s)", ip, ifi.Name, who), nil
		}
		next := end
		if sent < v.cfg.probeCount {
			next = start.Add(time.Duration(sent) * v.cfg.probeInterval)
		}
		if sent == v.cfg.probeCount && !now.Before(end) {
			return "", nil
		}
		if d, ok := ctx.Deadline(); ok && d.Before(next) {
			next = d
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		wait := max(time.Until(next), time.Millisecond)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return "", fmt.Errorf("wait for ARP answers on %s: %w", ifi.Name, err)
		}
	}
}

// readClaims reads every queued frame and returns the MAC of the first
// that claims ip, "" when none does.
func readClaims(fd int, buf []byte, ip netip.Addr, mine net.HardwareAddr) string {
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return "" // EAGAIN: nothing more queued
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		p, err := DecodeARP(buf[:n])
		if err == nil && p.claims(ip, mine) {
			return net.HardwareAddr(p.SenderMAC).String()
		}
	}
}
