// Package berofos drives a beroNet berofos layer 1 failover switch: its
// relay moves the phone lines (port group A) between two nodes (groups B and
// D), it has a hardware watchdog, and two power outlets.
//
// The wire facts are in shared/reference/devices.md: UDP "GBL4" on port
// 50123 for discovery and watchdog kicks, HTTP for state (GET /config.txt)
// and control (GET /?cmd=<group>&<key>=<value>).
//
// # Positions
//
// [PositionAB] (relay mode 1) connects the lines to the node cabled to B;
// [PositionAD] (relay mode 0) to the node cabled to D. A–D is the failsafe:
// an unpowered berofos connects A to D, and so does a berofos whose
// watchdog fires.
//
// # When the agent or its node dies
//
// Cable the node that normally holds the lines to B and the standby to D,
// enable the watchdog ([Device.EnableWatchdog]) and let the agent on the B
// node kick it (switchdrv/follow does, every half watchdog timeout). If that
// agent, or its whole node, dies, the kicks stop; when the watchdog timeout
// passes, the berofos moves the lines to D by itself and reports the
// watchdog as failed. If the berofos loses power, the lines go to D too. The
// D node's agent, once it is active, re-arms the watchdog and keeps the
// lines on D; the lines come back to B only when an agent moves them.
//
// # Registry options ("berofos")
//
//	address          host name or IP of the berofos (required)
//	http_port        HTTP port (80)
//	udp_port         GBL4 port (50123)
//	mac              the device's MAC, for watchdog kicks; learnt by unicast
//	                 discovery on first kick when empty
//	user             HTTP user (admin)
//	password         HTTP password; empty when password protection is off
//	timeout          per request (3s)
//	verify_timeout   how long to read back after a write (5s)
//	watchdog_timeout the device's watchdog timeout, which decides how often to
//	                 kick (10s; the device does not report it in seconds)
//	wintv            raw watchdog interval to write when enabling the
//	                 watchdog; its units are not published, so it is only
//	                 written when set
//	cycle_delay      time an outlet stays off during Cycle (5s)
package berofos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/internal/devctx"
	"github.com/hatui/hatui/switchdrv/internal/httpauth"
)

// Positions of the relay.
const (
	PositionAB switchdrv.Position = "A-B" // relay mode 1
	PositionAD switchdrv.Position = "A-D" // relay mode 0; the failsafe
)

// Outlets are named after the device's outlet numbers.
var outlets = []string{"0", "1"}

// MaxPasswordLen is the longest admin password the device takes
// (devices.md: at most 15 characters).
const MaxPasswordLen = 15

func init() {
	switchdrv.Register("berofos", func(o switchdrv.Options) (switchdrv.Device, error) {
		c, err := ParseOptions(o)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Config configures a [Device].
type Config struct {
	Address         string
	HTTPPort        int
	UDPPort         int
	MAC             net.HardwareAddr // nil: learn by discovery
	User            string
	Password        string
	Timeout         time.Duration
	VerifyTimeout   time.Duration
	WatchdogTimeout time.Duration
	WatchdogIntv    string // raw "wintv"; "" leaves it alone
	CycleDelay      time.Duration
}

// ParseOptions reads a Config from registry options; see the package
// documentation for the keys.
func ParseOptions(o switchdrv.Options) (Config, error) {
	r := switchdrv.NewOptionReader("berofos", o)
	c := Config{
		Address:         r.Required("address"),
		HTTPPort:        r.Int("http_port", 80, 1, 65535),
		UDPPort:         r.Int("udp_port", UDPPort, 1, 65535),
		User:            r.String("user", "admin"),
		Password:        r.Raw("password", ""),
		Timeout:         r.Duration("timeout", 3*time.Second),
		VerifyTimeout:   r.Duration("verify_timeout", 5*time.Second),
		WatchdogTimeout: r.Duration("watchdog_timeout", 10*time.Second),
		WatchdogIntv:    r.String("wintv", ""),
		CycleDelay:      r.Duration("cycle_delay", 5*time.Second),
	}
	if m := r.String("mac", ""); m != "" {
		mac, err := net.ParseMAC(m)
		if err != nil || len(mac) != 6 {
			r.Failf("mac", "%q is not a MAC address such as 00:19:32:00:12:1d", m)
		}
		c.MAC = mac
	}
	if c.WatchdogIntv != "" {
		if n, err := strconv.Atoi(c.WatchdogIntv); err != nil || n < 1 || n > 65535 {
			r.Failf("wintv", "%q is not a number from 1 to 65535", c.WatchdogIntv)
		}
	}
	if len(c.Password) > MaxPasswordLen {
		r.Failf("password", "is longer than the %d characters a berofos takes", MaxPasswordLen)
	}
	return c, r.Done()
}

// Device is one berofos. It is a [switchdrv.LineSwitch],
// [switchdrv.Watchdog], [switchdrv.PowerSwitch] and [switchdrv.Checker].
// Its methods are safe for concurrent use; HTTP calls are serialised (a
// read-modify-write must not interleave with another), kicks are not held
// up by them.
type Device struct {
	cfg  Config
	name string
	life *devctx.Lifetime
	hc   *http.Client

	httpMu   sync.Mutex // one HTTP conversation at a time
	password string     // current HTTP password (changes with SetAdminPassword)
	digest   map[string]string

	udpMu sync.Mutex
	mac   net.HardwareAddr
}

var (
	_ switchdrv.LineSwitch  = (*Device)(nil)
	_ switchdrv.Watchdog    = (*Device)(nil)
	_ switchdrv.PowerSwitch = (*Device)(nil)
	_ switchdrv.Checker     = (*Device)(nil)
)

// New returns a Device for c. It does no I/O.
func New(c Config) *Device {
	return &Device{
		cfg:      c,
		name:     "berofos " + c.Address,
		life:     devctx.New(),
		password: c.Password,
		mac:      c.MAC,
		hc: &http.Client{
			// Embedded web servers handle kept-alive connections badly,
			// and one request every few seconds gains nothing from them.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Name implements switchdrv.Device.
func (d *Device) Name() string { return d.name }

// Close ends calls in flight. The device itself keeps its state.
func (d *Device) Close() error {
	d.life.Close()
	return nil
}

// Capabilities implements switchdrv.LineSwitch.
func (d *Device) Capabilities() switchdrv.Capabilities {
	return switchdrv.Capabilities{
		Positions: []switchdrv.Position{PositionAB, PositionAD},
		Failsafe:  PositionAD,
		ReadBack:  true,
		Watchdog:  true,
	}
}

// WatchdogTimeout implements switchdrv.Watchdog.
func (d *Device) WatchdogTimeout() time.Duration { return d.cfg.WatchdogTimeout }

// httpGet performs one GET of pathQuery ("/config.txt" or "/?cmd=..."),
// answering a digest challenge if the device sends one.
func (d *Device) httpGet(ctx context.Context, op, pathQuery string) ([]byte, error) {
	if d.life.Closed() {
		return nil, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
	}
	// Each request gets the per-request timeout, even inside a longer
	// read-modify-write.
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	host := net.JoinHostPort(d.cfg.Address, strconv.Itoa(d.cfg.HTTPPort))
	url := "http://" + host + pathQuery
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err)
		}
		req.Header.Set("User-Agent", "hatui-switchdrv")
		if d.password != "" {
			if d.digest != nil {
				req.Header.Set("Authorization", httpauth.Authorization(d.cfg.User, d.password, http.MethodGet, pathQuery, d.digest))
			} else {
				req.SetBasicAuth(d.cfg.User, d.password)
			}
		}
		resp, err := d.hc.Do(req)
		if err != nil {
			return nil, d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigBytes+1))
		resp.Body.Close()
		if err != nil {
			return nil, d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return body, nil
		case resp.StatusCode == http.StatusUnauthorized:
			scheme, params := httpauth.Scheme(resp.Header.Get("WWW-Authenticate"))
			if scheme == "digest" && d.password != "" && attempt == 0 {
				// Answer the challenge once; a second 401 is a wrong
				// password (or a stale nonce, which the retry renews).
				d.digest = httpauth.ParseParams(params)
				continue
			}
			if d.password == "" {
				return nil, switchdrv.Errorf(switchdrv.ErrAuth, d.name, op, "the device asks for a password (HTTP 401)").
					WithHint("set password in this switch's options")
			}
			return nil, switchdrv.Errorf(switchdrv.ErrAuth, d.name, op, "the device refused user %q (HTTP 401)", d.cfg.User)
		case resp.StatusCode == http.StatusServiceUnavailable:
			// The reference names no busy reply for HTTP; 503 is what an
			// embedded server sends while it cannot serve (devices.md is
			// silent; the simulator does the same).
			return nil, switchdrv.Errorf(switchdrv.ErrBusy, d.name, op, "HTTP 503")
		default:
			return nil, switchdrv.Errorf(switchdrv.ErrBadReply, d.name, op, "HTTP %s", resp.Status)
		}
	}
}

// readConfig fetches and parses config.txt. Callers hold httpMu.
func (d *Device) readConfig(ctx context.Context, op string) (ConfMap, error) {
	page, err := d.httpGet(ctx, op, "/config.txt")
	if err != nil {
		return ConfMap{}, err
	}
	c, err := ParseConfMap(page)
	if err != nil {
		return ConfMap{}, switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
	}
	return c, nil
}

// writeGroup sets keys of one group by writing the whole group back, then
// reads back until the device shows every value set. Callers hold httpMu.
func (d *Device) writeGroup(ctx context.Context, op string, group int, set map[string]string) (ConfMap, error) {
	cur, err := d.readConfig(ctx, op)
	if err != nil {
		return ConfMap{}, err
	}
	if _, err := d.httpGet(ctx, op, "/?"+WriteQuery(group, cur.Group(group), set)); err != nil {
		return ConfMap{}, err
	}
	return d.verify(ctx, op, func(c ConfMap) []string { return mismatch(c, group, set) })
}

// verify reads config.txt until check finds nothing wrong or the verify
// timeout passes.
func (d *Device) verify(ctx context.Context, op string, check func(ConfMap) []string) (ConfMap, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.VerifyTimeout)
	defer cancel()
	var last []string
	var lastCfg ConfMap
	for {
		c, err := d.readConfig(ctx, op+" (read back)")
		if err == nil {
			lastCfg = c
			if last = check(c); len(last) == 0 {
				return c, nil
			}
		} else if switchdrv.KindOf(err) != switchdrv.ErrUnreachable {
			// Only a glitch in reaching the device is worth reading
			// again; a refused password or a closed device is final.
			return lastCfg, err
		}
		select {
		case <-ctx.Done():
			if d.life.Closed() {
				return lastCfg, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
			}
			if last == nil && err != nil {
				return lastCfg, switchdrv.NewError(switchdrv.ErrVerifyTimeout, d.name, op, err)
			}
			return lastCfg, switchdrv.Errorf(switchdrv.ErrVerifyTimeout, d.name, op,
				"after %v the device still shows %s", d.cfg.VerifyTimeout, strings.Join(last, ", "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lineState(c ConfMap) (switchdrv.LineState, error) {
	st := switchdrv.LineState{Verified: true}
	mode, ok := c.Bool(GroupRelay, "mode")
	if !ok {
		v, _ := c.Get(GroupRelay, "mode")
		return switchdrv.LineState{}, fmt.Errorf("config.txt has no usable %d_mode (got %q)", GroupRelay, v)
	}
	st.Position = PositionAD
	if mode {
		st.Position = PositionAB
	}
	st.Watchdog = watchdogState(c)
	return st, nil
}

func watchdogState(c ConfMap) switchdrv.WatchdogState {
	en, ok := c.Bool(GroupWatchdog, "wen")
	if !ok {
		return switchdrv.WatchdogUnknown
	}
	if ws, _ := c.Get(GroupWatchdog, "wstate"); strings.TrimSpace(ws) == "2" {
		return switchdrv.WatchdogFailed
	}
	if !en {
		return switchdrv.WatchdogOff
	}
	return switchdrv.WatchdogOn
}

// LineState implements switchdrv.LineSwitch.
func (d *Device) LineState(ctx context.Context) (switchdrv.LineState, error) {
	const op = "read position"
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	c, err := d.readConfig(ctx, op)
	if err != nil {
		return switchdrv.LineState{}, err
	}
	st, err := lineState(c)
	if err != nil {
		return switchdrv.LineState{}, switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
	}
	return st, nil
}

// SetPosition implements switchdrv.LineSwitch. When the watchdog has fired
// and is enabled, it is re-armed first, so that the new position is
// protected by it again.
func (d *Device) SetPosition(ctx context.Context, p switchdrv.Position) (switchdrv.LineState, error) {
	op := "set position " + string(p)
	var mode string
	switch p {
	case PositionAB:
		mode = "1"
	case PositionAD:
		mode = "0"
	default:
		return switchdrv.LineState{}, switchdrv.Errorf(switchdrv.ErrUnsupported, d.name, op,
			"a berofos has positions %s and %s", PositionAB, PositionAD)
	}
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout+2*d.cfg.VerifyTimeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	cur, err := d.readConfig(ctx, op)
	if err != nil {
		return switchdrv.LineState{}, err
	}
	if watchdogState(cur) == switchdrv.WatchdogFailed {
		if en, _ := cur.Bool(GroupWatchdog, "wen"); en {
			if _, err := d.writeGroup(ctx, op+": re-arm watchdog", GroupWatchdog, map[string]string{"wen": "1", "wstate": "1"}); err != nil {
				return switchdrv.LineState{}, err
			}
		}
	}
	c, err := d.writeGroup(ctx, op, GroupRelay, map[string]string{"mode": mode})
	st, perr := lineState(c)
	if perr != nil {
		st = switchdrv.LineState{}
	}
	return st, err
}

// EnableWatchdog switches the hardware watchdog on (armed, counting from
// now) or off, writing "wintv" first when configured. Call it once the
// agent kicks: from then on, missing kicks move the lines to A–D.
func (d *Device) EnableWatchdog(ctx context.Context, on bool) error {
	op := "enable watchdog"
	set := map[string]string{"wen": "1", "wstate": "1"}
	if !on {
		op = "disable watchdog"
		set = map[string]string{"wen": "0", "wstate": "0"}
	}
	ctx, cancel := d.life.Bound(ctx, 2*(d.cfg.Timeout+d.cfg.VerifyTimeout))
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	if on && d.cfg.WatchdogIntv != "" {
		if _, err := d.writeGroup(ctx, op+": set interval", GroupSystem, map[string]string{"wintv": d.cfg.WatchdogIntv}); err != nil {
			return err
		}
	}
	_, err := d.writeGroup(ctx, op, GroupWatchdog, set)
	return err
}

// SetAdminPassword turns on HTTP password protection with a new admin
// password, as edgeBOX does on first configuration: a password known only
// to the switch and the two nodes. It verifies by reading the state with
// the new password, and from then on uses it. Store the password in both
// nodes' configs before calling, or the other node is locked out.
func (d *Device) SetAdminPassword(ctx context.Context, password string) error {
	const op = "set admin password"
	if err := checkPassword(password); err != nil {
		return switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err)
	}
	ctx, cancel := d.life.Bound(ctx, 2*d.cfg.Timeout+d.cfg.VerifyTimeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	cur, err := d.readConfig(ctx, op)
	if err != nil {
		return err
	}
	if _, err := d.httpGet(ctx, op, "/?"+WriteQuery(GroupNetwork, cur.Group(GroupNetwork), map[string]string{"pwd": "1", "apwd": password})); err != nil {
		return err
	}
	old, oldDigest := d.password, d.digest
	d.password, d.digest = password, nil
	if _, err := d.verify(ctx, op, func(c ConfMap) []string { return mismatch(c, GroupNetwork, map[string]string{"pwd": "1"}) }); err != nil {
		// The device did not take the new password: keep using the old
		// one so the next call still works.
		d.password, d.digest = old, oldDigest
		return err
	}
	return nil
}

func checkPassword(p string) error {
	if p == "" || len(p) > MaxPasswordLen {
		return fmt.Errorf("the password must be 1 to %d characters", MaxPasswordLen)
	}
	for _, r := range p {
		if r <= ' ' || r > '~' {
			return errors.New("the password must be printable ASCII without spaces")
		}
	}
	return nil
}

// Check implements switchdrv.Checker: it reads config.txt.
func (d *Device) Check(ctx context.Context) error {
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	_, err := d.readConfig(ctx, "check")
	return err
}

// Kick implements switchdrv.Watchdog: one GBL4 kick datagram carrying the
// device MAC, answered by the device.
func (d *Device) Kick(ctx context.Context) error {
	const op = "kick watchdog"
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	d.udpMu.Lock()
	defer d.udpMu.Unlock()
	if d.mac == nil {
		mac, err := d.learnMAC(ctx)
		if err != nil {
			return err
		}
		d.mac = mac
	}
	_, err := d.udpRequest(ctx, op, CmdKick, KickPayload(d.mac))
	return err
}

// learnMAC asks the device itself for its MAC by unicast discovery.
func (d *Device) learnMAC(ctx context.Context) (net.HardwareAddr, error) {
	const op = "learn MAC by discovery"
	p, err := d.udpRequest(ctx, op, CmdDiscover, nil)
	if err != nil {
		return nil, err
	}
	info, err := ParseDiscoverReply(p)
	if err != nil {
		return nil, switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
	}
	return info.MAC, nil
}

// udpRequest sends one GBL4 request to the device and waits for the reply
// with the same command from the device's address. A reply from the device
// that fails its checksum is an ErrBadReply at once: waiting longer would
// only hide a broken device.
func (d *Device) udpRequest(ctx context.Context, op string, cmd byte, payload []byte) ([]byte, error) {
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", d.cfg.Address)
	if err != nil || len(ips) == 0 {
		return nil, d.life.Classify(fmt.Errorf("resolve %s: %w", d.cfg.Address, err), d.name, op, switchdrv.ErrUnreachable)
	}
	ip := ips[0].Unmap()
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, switchdrv.NewError(switchdrv.ErrUnreachable, d.name, op, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	to := netip.AddrPortFrom(ip, uint16(d.cfg.UDPPort))
	if _, err := conn.WriteToUDPAddrPort(Datagram{Cmd: cmd, Payload: payload}.Marshal(), to); err != nil {
		return nil, d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil && !d.life.Closed() {
				err = fmt.Errorf("no reply within the deadline: %w", ctx.Err())
			}
			return nil, d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
		}
		if from.Addr().Unmap() != ip {
			continue
		}
		dg, err := ParseDatagram(buf[:n])
		if err != nil {
			return nil, switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
		}
		if dg.Cmd != cmd {
			continue
		}
		if cmd == CmdKick && len(dg.Payload) >= 6 && !slices.Equal(dg.Payload[:6], d.mac) {
			// Another berofos at the same address cannot happen; a MAC
			// that differs means the configured MAC is wrong, and the
			// device will not count the kick.
			return nil, switchdrv.Errorf(switchdrv.ErrBadReply, d.name, op,
				"reply carries MAC %s, configured %s", net.HardwareAddr(dg.Payload[:6]), d.mac).
				WithHint("fix mac in this switch's options, or leave it empty to learn it")
		}
		return slices.Clone(dg.Payload), nil
	}
}

// Outlets implements switchdrv.PowerSwitch: the berofos has outlets 0 and 1.
func (d *Device) Outlets(context.Context) ([]string, error) { return slices.Clone(outlets), nil }

func (d *Device) outletKey(op, outlet string) (string, error) {
	if !slices.Contains(outlets, outlet) {
		return "", switchdrv.Errorf(switchdrv.ErrConfig, d.name, op, "no outlet %q: a berofos has outlets 0 and 1", outlet)
	}
	return "p" + outlet, nil
}

func powerState(c ConfMap, outlet string) (switchdrv.PowerState, error) {
	on, ok := c.Bool(GroupPower, "p"+outlet)
	if !ok {
		v, _ := c.Get(GroupPower, "p"+outlet)
		return switchdrv.PowerState{Outlet: outlet}, fmt.Errorf("config.txt has no usable %d_p%s (got %q)", GroupPower, outlet, v)
	}
	st := switchdrv.PowerState{Outlet: outlet, Power: switchdrv.PowerOff, Verified: true}
	if on {
		st.Power = switchdrv.PowerOn
	}
	return st, nil
}

// Power implements switchdrv.PowerSwitch.
func (d *Device) Power(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	op := "read outlet " + outlet
	if _, err := d.outletKey(op, outlet); err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	c, err := d.readConfig(ctx, op)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	st, err := powerState(c, outlet)
	if err != nil {
		return st, switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
	}
	return st, nil
}

// SetPower implements switchdrv.PowerSwitch. Outlets are written one at a
// time ("cmd=5&p=<n>&s=<0|1>", devices.md), not as a group: the command
// addresses a single outlet.
func (d *Device) SetPower(ctx context.Context, outlet string, on bool) (switchdrv.PowerState, error) {
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout+d.cfg.VerifyTimeout)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	return d.setPower(ctx, outlet, on)
}

func (d *Device) setPower(ctx context.Context, outlet string, on bool) (switchdrv.PowerState, error) {
	s, word := "0", "off"
	if on {
		s, word = "1", "on"
	}
	op := "switch outlet " + outlet + " " + word
	key, err := d.outletKey(op, outlet)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	if _, err := d.httpGet(ctx, op, fmt.Sprintf("/?cmd=%d&p=%s&s=%s", GroupPower, outlet, s)); err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	c, err := d.verify(ctx, op, func(c ConfMap) []string { return mismatch(c, GroupPower, map[string]string{key: s}) })
	st, perr := powerState(c, outlet)
	if err != nil || perr != nil {
		st.Verified = false
	}
	return st, err
}

// Cycle implements switchdrv.PowerSwitch: off, verified, a pause of
// cycle_delay, on, verified.
func (d *Device) Cycle(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	ctx, cancel := d.life.Bound(ctx, 2*(d.cfg.Timeout+d.cfg.VerifyTimeout)+d.cfg.CycleDelay)
	defer cancel()
	d.httpMu.Lock()
	defer d.httpMu.Unlock()
	if st, err := d.setPower(ctx, outlet, false); err != nil {
		return st, err
	}
	select {
	case <-ctx.Done():
		return switchdrv.PowerState{Outlet: outlet, Power: switchdrv.PowerOff, Verified: true},
			d.life.Classify(ctx.Err(), d.name, "cycle outlet "+outlet, switchdrv.ErrUnreachable)
	case <-time.After(d.cfg.CycleDelay):
	}
	return d.setPower(ctx, outlet, true)
}
