package berofos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// UDPPort is the berofos's UDP control port ("GBL4"), per
// shared/reference/devices.md.
const UDPPort = 50123

// GBL4 command bytes (devices.md: 1 discover, 2 set network config, 9 ping,
// 11 kick watchdog).
const (
	CmdDiscover   byte = 1
	CmdSetNetconf byte = 2
	CmdPing       byte = 9
	CmdKick       byte = 11
)

// Hardware magics that identify a berofos in a discover reply (devices.md:
// 0x0050 or 0x00BB). Other beroNet devices answer discovery too; they are
// skipped.
const (
	HWMagicBerofos   uint16 = 0x0050
	HWMagicBerofosB  uint16 = 0x00BB
	discoverReplyLen        = 30 // fixed part of a discover reply payload
)

// prefix starts every GBL4 datagram: "GBL" and protocol version 4.
var prefix = []byte{'G', 'B', 'L', 0x04}

// Checksum returns the GBL4 checksum: the XOR of the prefix, the command
// byte and every payload byte.
func Checksum(cmd byte, payload []byte) byte {
	c := prefix[0] ^ prefix[1] ^ prefix[2] ^ prefix[3] ^ cmd
	for _, b := range payload {
		c ^= b
	}
	return c
}

// Datagram is one GBL4 request or reply.
type Datagram struct {
	Cmd     byte
	Payload []byte
}

// Marshal returns the datagram's bytes on the wire, checksum included.
func (d Datagram) Marshal() []byte {
	b := make([]byte, 0, len(prefix)+2+len(d.Payload))
	b = append(b, prefix...)
	b = append(b, d.Cmd)
	b = append(b, d.Payload...)
	return append(b, Checksum(d.Cmd, d.Payload))
}

// Errors of ParseDatagram.
var (
	errShort    = errors.New("datagram shorter than prefix, command and checksum")
	errPrefix   = errors.New("datagram does not start with GBL\\x04")
	errChecksum = errors.New("wrong checksum")
)

// ParseDatagram checks a received GBL4 datagram's prefix and checksum and
// returns its command and payload. The payload aliases b.
func ParseDatagram(b []byte) (Datagram, error) {
	if len(b) < len(prefix)+2 {
		return Datagram{}, fmt.Errorf("%w (%d bytes)", errShort, len(b))
	}
	if !bytes.Equal(b[:len(prefix)], prefix) {
		return Datagram{}, fmt.Errorf("%w (starts % x)", errPrefix, b[:len(prefix)])
	}
	d := Datagram{Cmd: b[len(prefix)], Payload: b[len(prefix)+1 : len(b)-1]}
	if want, got := Checksum(d.Cmd, d.Payload), b[len(b)-1]; want != got {
		return Datagram{}, fmt.Errorf("%w: got %#02x, want %#02x", errChecksum, got, want)
	}
	return d, nil
}

// KickPayload is the payload of a watchdog kick: the device's MAC and a
// zero byte (devices.md).
func KickPayload(mac net.HardwareAddr) []byte {
	return append(slices.Clone([]byte(mac)), 0x00)
}

// DeviceInfo is one berofos as its discover reply describes it.
type DeviceInfo struct {
	// Name is the model, derived from the hardware magic. The discover
	// reply carries no host name (devices.md lists every field), so this is
	// what an operator sees next to the MAC in a device list.
	Name       string
	MAC        net.HardwareAddr
	IP         netip.Addr
	Netmask    netip.Addr
	Gateway    netip.Addr
	HWMagic    uint16
	Bootloader string // "major.minor"
	Firmware   string // "major.minor"
	// Mode is the device mode; 0 is operational, anything else (flash
	// mode) means it will not switch lines.
	Mode      byte
	PHYConfig byte
	PHYState  byte
	DHCP      bool
	HTTPAuth  bool
	IPACL     bool
	HTTPPort  uint16
	// From is the address the reply came from; on a device with a
	// misconfigured network it can differ from IP.
	From netip.AddrPort
}

// Operational reports whether the device is in its normal (switching) mode.
func (d DeviceInfo) Operational() bool { return d.Mode == 0 }

// String is a one-line description for device lists.
func (d DeviceInfo) String() string {
	var opts []string
	if d.DHCP {
		opts = append(opts, "dhcp")
	}
	if d.HTTPAuth {
		opts = append(opts, "http-auth")
	}
	if d.IPACL {
		opts = append(opts, "ip-acl")
	}
	mode := "operational"
	if !d.Operational() {
		mode = fmt.Sprintf("mode %d", d.Mode)
	}
	return fmt.Sprintf("%s %s ip %s http %d firmware %s %s [%s]",
		d.Name, d.MAC, d.IP, d.HTTPPort, d.Firmware, mode, strings.Join(opts, ","))
}

var errNotBerofos = errors.New("not a berofos")

// ParseDiscoverReply decodes the payload of a discover reply (devices.md:
// MAC[6], hardware magic u16, bootloader major, minor, firmware major,
// minor, device mode, IP[4], netmask[4], gateway[4], PHY config, PHY state,
// options, HTTP port u16; multi-byte fields big-endian). Bytes after the
// known fields are ignored, so a newer firmware that appends fields still
// parses. A reply from another beroNet model is an error wrapping
// errNotBerofos.
func ParseDiscoverReply(payload []byte) (DeviceInfo, error) {
	if len(payload) < discoverReplyLen {
		return DeviceInfo{}, fmt.Errorf("discover reply payload is %d bytes, want at least %d", len(payload), discoverReplyLen)
	}
	p := payload
	d := DeviceInfo{
		MAC:        net.HardwareAddr(slices.Clone(p[0:6])),
		HWMagic:    binary.BigEndian.Uint16(p[6:8]),
		Bootloader: fmt.Sprintf("%d.%d", p[8], p[9]),
		Firmware:   fmt.Sprintf("%d.%d", p[10], p[11]),
		Mode:       p[12],
		IP:         netip.AddrFrom4([4]byte(p[13:17])),
		Netmask:    netip.AddrFrom4([4]byte(p[17:21])),
		Gateway:    netip.AddrFrom4([4]byte(p[21:25])),
		PHYConfig:  p[25],
		PHYState:   p[26],
		DHCP:       p[27]&0x01 != 0,
		HTTPAuth:   p[27]&0x02 != 0,
		IPACL:      p[27]&0x04 != 0,
		HTTPPort:   binary.BigEndian.Uint16(p[28:30]),
	}
	switch d.HWMagic {
	case HWMagicBerofos, HWMagicBerofosB:
		d.Name = "berofos"
	default:
		return d, fmt.Errorf("%w: hardware magic %#04x", errNotBerofos, d.HWMagic)
	}
	return d, nil
}

// MarshalDiscoverReply is the inverse of ParseDiscoverReply, for the
// simulator and tests.
func MarshalDiscoverReply(d DeviceInfo) []byte {
	p := make([]byte, discoverReplyLen)
	copy(p[0:6], d.MAC)
	binary.BigEndian.PutUint16(p[6:8], d.HWMagic)
	fmt.Sscanf(d.Bootloader, "%d.%d", &p[8], &p[9])
	fmt.Sscanf(d.Firmware, "%d.%d", &p[10], &p[11])
	p[12] = d.Mode
	ip4 := func(a netip.Addr) []byte {
		if a.Is4() {
			b := a.As4()
			return b[:]
		}
		return []byte{0, 0, 0, 0}
	}
	copy(p[13:17], ip4(d.IP))
	copy(p[17:21], ip4(d.Netmask))
	copy(p[21:25], ip4(d.Gateway))
	p[25], p[26] = d.PHYConfig, d.PHYState
	if d.DHCP {
		p[27] |= 0x01
	}
	if d.HTTPAuth {
		p[27] |= 0x02
	}
	if d.IPACL {
		p[27] |= 0x04
	}
	binary.BigEndian.PutUint16(p[28:30], d.HTTPPort)
	return p
}

// DiscoverOptions tune [Discover].
type DiscoverOptions struct {
	// Target is where the request goes: "255.255.255.255:50123" (every
	// device on the local segment) when empty, or one device's
	// "host:port".
	Target string
	// Wait is how long replies are collected; 3 s (the vendor tools'
	// default) when zero. The context's deadline, if sooner, wins.
	Wait time.Duration
}

// DiscoverError reports replies that could not be used, alongside the
// devices that could.
type DiscoverError struct {
	Bad []error // one per unusable reply, saying who sent it and why
}

func (e *DiscoverError) Error() string {
	return fmt.Sprintf("%d discover replies could not be parsed, first: %v", len(e.Bad), e.Bad[0])
}

// Discover sends a GBL4 discover request and collects replies until the wait
// is over. It returns the berofos devices found, sorted by IP, one per MAC.
// Replies from other beroNet models are skipped silently; malformed replies
// are reported in a *DiscoverError (with whatever devices were found) so a
// broken device on the segment is not invisible.
func Discover(ctx context.Context, o DiscoverOptions) ([]DeviceInfo, error) {
	target := o.Target
	if target == "" {
		target = fmt.Sprintf("255.255.255.255:%d", UDPPort)
	}
	raddr, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return nil, fmt.Errorf("discover berofos: resolve %q: %w", target, err)
	}
	wait := o.Wait
	if wait <= 0 {
		wait = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()

	// Go enables SO_BROADCAST on IPv4 UDP sockets, so the same socket
	// serves broadcast and unicast discovery.
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, fmt.Errorf("discover berofos: open socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	if _, err := conn.WriteToUDP(Datagram{Cmd: CmdDiscover}.Marshal(), raddr); err != nil {
		return nil, fmt.Errorf("discover berofos: send to %s: %w", raddr, err)
	}

	byMAC := map[string]DeviceInfo{}
	var bad []error
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break // the wait is over (or the socket failed: report what we have)
		}
		d, err := ParseDatagram(buf[:n])
		if err == nil && d.Cmd != CmdDiscover {
			continue // a reply to someone else's request
		}
		var info DeviceInfo
		if err == nil {
			info, err = ParseDiscoverReply(d.Payload)
		}
		if errors.Is(err, errNotBerofos) {
			continue
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("reply from %s: %w", from, err))
			continue
		}
		info.From = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		byMAC[info.MAC.String()] = info
	}
	devs := make([]DeviceInfo, 0, len(byMAC))
	for _, d := range byMAC {
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b DeviceInfo) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return bytes.Compare(a.MAC, b.MAC)
	})
	if len(bad) > 0 {
		return devs, &DiscoverError{Bad: bad}
	}
	return devs, nil
}
