// Package berofossim is a berofos that lives on loopback: it answers GBL4
// datagrams (discover, ping, watchdog kick) on UDP and serves config.txt and
// "/?cmd=" writes over HTTP, as devices.md describes the real device, with a
// hardware watchdog and fault modes that can be switched at run time. The
// agent's tests and `hatui --demo` use it where a real berofos would stand.
//
// Where devices.md is silent the simulator makes the same choice as the
// driver and says so: HTTP 503 means busy; the watchdog is re-armed by
// writing wstate=1 with wen=1 in group 6; the reply to a kick repeats the
// kick's payload; the admin user is "admin".
package berofossim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/berofos"
	"github.com/hatui/hatui/switchdrv/internal/httpauth"
)

// Fault is a way for the simulated device to misbehave.
type Fault int

// Faults.
const (
	FaultNone         Fault = iota
	FaultNoAnswer           // UDP requests are dropped; HTTP requests are held until the client gives up
	FaultBusy               // HTTP requests get 503
	FaultBadChecksum        // UDP replies carry a wrong checksum
	FaultUnauthorized       // HTTP requests get 401 whatever the credentials
	FaultSlow               // every reply waits SlowDelay first
	FaultStuck              // HTTP writes are acknowledged but change nothing (a stuck relay)
)

func (f Fault) String() string {
	return [...]string{"none", "no answer", "busy", "bad checksum", "unauthorized", "slow", "stuck"}[f]
}

// DefaultMAC is the MAC of the example kick datagram in devices.md.
var DefaultMAC = net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1d}

// Options configure a simulator. The zero value is a factory-fresh device
// on 127.0.0.1 with ephemeral ports, no password and the relay at A–D.
type Options struct {
	MAC             net.HardwareAddr // DefaultMAC if nil
	Password        string           // non-empty: HTTP password protection is on
	Digest          bool             // ask for digest rather than basic authentication
	WatchdogTimeout time.Duration    // 10 s if zero
	// GroupQuirk makes a write reset the keys of its group that the request
	// leaves out, as one firmware is reported to do (devices.md).
	GroupQuirk bool
	// Host is the IP to listen on; 127.0.0.1 if empty.
	Host string
	// UDPPort is the GBL4 port; 0 picks a free one.
	UDPPort int
	// HWMagic is the hardware magic in discover replies (0x0050 if zero).
	HWMagic uint16
}

// Sim is a running simulated berofos.
type Sim struct {
	opts    Options
	udp     *net.UDPConn
	httpLn  net.Listener
	srv     *http.Server
	done    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	mu        sync.Mutex
	vals      map[string]string
	password  string
	fault     Fault
	slow      time.Duration
	unpowered bool
	kicks     int
	lastKick  net.HardwareAddr
	writes    map[int]int
	requests  int
	nonce     string
	wdTimer   *time.Timer
	wdExpires time.Time
}

// Start starts a simulator.
func Start(o Options) (*Sim, error) {
	if o.MAC == nil {
		o.MAC = DefaultMAC
	}
	if o.WatchdogTimeout <= 0 {
		o.WatchdogTimeout = 10 * time.Second
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.HWMagic == 0 {
		o.HWMagic = berofos.HWMagicBerofos
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(o.Host), Port: o.UDPPort})
	if err != nil {
		return nil, fmt.Errorf("berofossim: listen udp: %w", err)
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort(o.Host, "0"))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("berofossim: listen http: %w", err)
	}
	s := &Sim{
		opts:     o,
		udp:      udp,
		httpLn:   ln,
		done:     make(chan struct{}),
		password: o.Password,
		writes:   map[int]int{},
		slow:     2 * time.Second,
	}
	s.vals = s.factoryValues()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.srv.Serve(ln) }()
	go func() { defer s.wg.Done(); s.serveUDP() }()
	return s, nil
}

func (s *Sim) factoryValues() map[string]string {
	pwd := ""
	if s.password != "" {
		pwd = "checked"
	}
	return map[string]string{
		"1_sz": "0", "1_rm": "0", "1_p0": "1", "1_p1": "1",
		"2_wen": "0", "2_wintv": "10", "2_as": "0", "2_men": "0",
		"2_mhost": "", "2_mfrom": "", "2_mto": "",
		// Group 3 reports its booleans the way some firmware does:
		// "checked" or nothing.
		"3_dn": "berofos", "3_ip": s.opts.Host, "3_nm": "255.0.0.0", "3_gw": "0.0.0.0",
		"3_dns": "0.0.0.0", "3_dhcp": "", "3_port": strconv.Itoa(int(s.HTTPAddr().Port())), "3_pwd": pwd,
		"4_mode": "0",
		"5_p0":   "1", "5_p1": "1",
		"6_wen": "0", "6_wstate": "0",
		"0_wretv": "0",
	}
}

// Close stops the simulator. It is safe to call more than once.
func (s *Sim) Close() error {
	s.closeMu.Do(func() {
		close(s.done)
		s.srv.Close()
		s.udp.Close()
		s.mu.Lock()
		if s.wdTimer != nil {
			s.wdTimer.Stop()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// UDPAddr is where the simulator answers GBL4.
func (s *Sim) UDPAddr() netip.AddrPort { return s.udp.LocalAddr().(*net.UDPAddr).AddrPort() }

// HTTPAddr is where the simulator serves HTTP.
func (s *Sim) HTTPAddr() netip.AddrPort {
	return netip.MustParseAddrPort(s.httpLn.Addr().String())
}

// MAC is the simulated device's MAC.
func (s *Sim) MAC() net.HardwareAddr { return s.opts.MAC }

// DriverOptions are the registry options that reach this simulator, with
// short timeouts suited to tests.
func (s *Sim) DriverOptions() switchdrv.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	return switchdrv.Options{
		"address":          s.opts.Host,
		"http_port":        strconv.Itoa(int(s.HTTPAddr().Port())),
		"udp_port":         strconv.Itoa(int(s.UDPAddr().Port())),
		"password":         s.password,
		"timeout":          "1s",
		"verify_timeout":   "1s",
		"watchdog_timeout": s.opts.WatchdogTimeout.String(),
		"cycle_delay":      "10ms",
	}
}

// SetFault switches the fault mode.
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetSlowDelay sets how long FaultSlow delays replies (2 s by default).
func (s *Sim) SetSlowDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow = d
}

// SetPowered switches the simulated device's power. Unpowered, it answers
// nothing and connects A to D, as the real one does.
func (s *Sim) SetPowered(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unpowered = !on
	if !on {
		s.vals["4_mode"] = "0"
		s.stopWatchdogLocked()
	} else if isTrue(s.vals["6_wen"]) {
		s.vals["6_wstate"] = "1"
		s.armWatchdogLocked()
	}
}

// Position is where the relay connects the lines now.
func (s *Sim) Position() switchdrv.Position {
	if s.Value("4_mode") == "1" {
		return berofos.PositionAB
	}
	return berofos.PositionAD
}

// SetPosition moves the relay as if by someone at the web interface.
func (s *Sim) SetPosition(p switchdrv.Position) {
	v := "0"
	if p == berofos.PositionAB {
		v = "1"
	}
	s.Set("4_mode", v)
}

// Value returns a config.txt value by its "<group>_<key>" name.
func (s *Sim) Value(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals[key]
}

// Set changes a config.txt value directly, bypassing HTTP.
func (s *Sim) Set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[key] = value
}

// Password is the current admin password ("" when protection is off).
func (s *Sim) Password() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !isTrue(s.vals["3_pwd"]) {
		return ""
	}
	return s.password
}

// Kicks counts watchdog kicks that carried the device's MAC.
func (s *Sim) Kicks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kicks
}

// LastKickMAC is the MAC carried by the last kick datagram received,
// whether or not it matched.
func (s *Sim) LastKickMAC() net.HardwareAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastKick
}

// Writes counts the HTTP writes to one command group.
func (s *Sim) Writes(group int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[group]
}

// Requests counts the HTTP requests received, answered or not.
func (s *Sim) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// WatchdogDeadline is when the watchdog fires unless kicked, or the zero
// time when it is not counting.
func (s *Sim) WatchdogDeadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wdTimer == nil {
		return time.Time{}
	}
	return s.wdExpires
}

// WatchdogState is "0" off, "1" on, "2" failed, as config.txt shows it.
func (s *Sim) WatchdogState() string { return s.Value("6_wstate") }

func (s *Sim) faultState() (Fault, time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, s.slow, s.unpowered
}

// sleep waits d unless the simulator closes first.
func (s *Sim) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
	case <-ctx.Done():
	}
	return false
}

func (s *Sim) serveUDP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		reply := s.handleDatagram(buf[:n])
		if reply == nil {
			continue
		}
		fault, slow, unpowered := s.faultState()
		switch {
		case unpowered || fault == FaultNoAnswer:
			continue
		case fault == FaultBadChecksum:
			reply[len(reply)-1] ^= 0xff
		case fault == FaultSlow:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if s.sleep(context.Background(), slow) {
					s.udp.WriteToUDPAddrPort(reply, from)
				}
			}()
			continue
		}
		s.udp.WriteToUDPAddrPort(reply, from)
	}
}

// handleDatagram returns the reply to one datagram, or nil for none.
// Malformed requests are ignored, as a device on a shared segment must.
func (s *Sim) handleDatagram(b []byte) []byte {
	d, err := berofos.ParseDatagram(b)
	if err != nil {
		return nil
	}
	switch d.Cmd {
	case berofos.CmdDiscover:
		s.mu.Lock()
		port, _ := strconv.Atoi(s.vals["3_port"])
		info := berofos.DeviceInfo{
			MAC: s.opts.MAC, HWMagic: s.opts.HWMagic,
			Bootloader: "1.1", Firmware: "1.6",
			IP:       netip.MustParseAddr(s.opts.Host),
			Netmask:  netip.MustParseAddr("255.0.0.0"),
			Gateway:  netip.MustParseAddr("0.0.0.0"),
			PHYState: 0x07, PHYConfig: 0xff,
			HTTPAuth: isTrue(s.vals["3_pwd"]),
			HTTPPort: uint16(port),
		}
		s.mu.Unlock()
		return berofos.Datagram{Cmd: d.Cmd, Payload: berofos.MarshalDiscoverReply(info)}.Marshal()
	case berofos.CmdPing:
		if len(d.Payload) < 6 || !slices.Equal(d.Payload[:6], s.opts.MAC) {
			return nil
		}
		return berofos.Datagram{Cmd: d.Cmd, Payload: d.Payload}.Marshal()
	case berofos.CmdKick:
		if len(d.Payload) < 6 {
			return nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lastKick = slices.Clone(net.HardwareAddr(d.Payload[:6]))
		if !slices.Equal(d.Payload[:6], s.opts.MAC) || s.unpowered {
			return nil // a kick for another device
		}
		s.kicks++
		if s.vals["6_wstate"] == "1" {
			s.armWatchdogLocked()
		}
		return berofos.Datagram{Cmd: d.Cmd, Payload: d.Payload}.Marshal()
	}
	return nil
}

// armWatchdogLocked (re)starts the watchdog countdown.
func (s *Sim) armWatchdogLocked() {
	s.stopWatchdogLocked()
	s.wdExpires = time.Now().Add(s.opts.WatchdogTimeout)
	s.wdTimer = time.AfterFunc(s.opts.WatchdogTimeout, s.watchdogFired)
}

func (s *Sim) stopWatchdogLocked() {
	if s.wdTimer != nil {
		s.wdTimer.Stop()
		s.wdTimer = nil
	}
}

func (s *Sim) watchdogFired() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wdTimer == nil || time.Now().Before(s.wdExpires) {
		return // kicked or stopped meanwhile
	}
	if isTrue(s.vals["6_wen"]) && s.vals["6_wstate"] == "1" {
		s.vals["6_wstate"] = "2"
		s.vals["4_mode"] = "0" // the failsafe: lines to D
	}
	s.wdTimer = nil
}

func isTrue(v string) bool { return v == "1" || v == "checked" }

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	fault, slow, unpowered := s.faultState()
	switch {
	case unpowered || fault == FaultNoAnswer:
		// Hold the request: the client must give up on its own deadline.
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	case fault == FaultSlow:
		if !s.sleep(r.Context(), slow) {
			return
		}
	case fault == FaultBusy:
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	case fault == FaultUnauthorized:
		s.challenge(w)
		return
	}
	if !s.authorized(r) {
		s.challenge(w)
		return
	}
	switch {
	case r.URL.Path == "/config.txt":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, s.configPage())
	case r.URL.Path == "/" && r.URL.Query().Has("cmd"):
		if err := s.write(r.URL.Query(), fault == FaultStuck); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "<html><body>OK</body></html>\n")
	default:
		http.NotFound(w, r)
	}
}

func (s *Sim) authorized(r *http.Request) bool {
	s.mu.Lock()
	on, pw, nonce := isTrue(s.vals["3_pwd"]), s.password, s.nonce
	s.mu.Unlock()
	if !on {
		return true
	}
	if s.opts.Digest {
		scheme, params := httpauth.Scheme(r.Header.Get("Authorization"))
		return scheme == "digest" && nonce != "" &&
			httpauth.Check("admin", pw, r.Method, nonce, httpauth.ParseParams(params))
	}
	u, p, ok := r.BasicAuth()
	return ok && u == "admin" && p == pw
}

func (s *Sim) challenge(w http.ResponseWriter) {
	if s.opts.Digest {
		b := make([]byte, 12)
		rand.Read(b)
		s.mu.Lock()
		s.nonce = hex.EncodeToString(b)
		nonce := s.nonce
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", httpauth.Challenge("berofos", nonce))
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="berofos"`)
	}
	http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
}

func (s *Sim) configPage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := maps.Clone(s.vals)
	if s.wdTimer != nil {
		vals["0_wretv"] = strconv.Itoa(int(time.Until(s.wdExpires).Seconds()))
	}
	var b strings.Builder
	b.WriteString(berofos.ConfigMagic + "=0.1\n")
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		b.WriteString(k + "=" + vals[k] + "\n")
	}
	return b.String()
}

// write applies "/?cmd=<group>&key=value...".
func (s *Sim) write(q map[string][]string, stuck bool) error {
	group, err := strconv.Atoi(first(q, "cmd"))
	if err != nil {
		return errors.New("bad cmd")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes[group]++
	if stuck {
		return nil
	}
	if group == berofos.GroupPower {
		p, v := first(q, "p"), first(q, "s")
		if (p != "0" && p != "1") || (v != "0" && v != "1") {
			return errors.New("bad outlet or state")
		}
		s.vals["5_p"+p] = v
		return nil
	}
	pre := strconv.Itoa(group) + "_"
	if s.opts.GroupQuirk {
		for k := range s.vals {
			name, ok := strings.CutPrefix(k, pre)
			if ok && !q2has(q, name) && name != "wstate" {
				s.vals[k] = ""
				if boolish(name) {
					s.vals[k] = "0"
				}
			}
		}
	}
	prevWen := isTrue(s.vals["6_wen"])
	for k := range q {
		if k == "cmd" {
			continue
		}
		v := first(q, k)
		switch {
		case group == berofos.GroupNetwork && k == "apwd":
			s.password = v
		case group == berofos.GroupWatchdog && k == "wstate":
			// handled below
		default:
			s.vals[pre+k] = v
		}
	}
	if group == berofos.GroupWatchdog {
		wen := isTrue(s.vals["6_wen"])
		switch {
		case !wen:
			s.vals["6_wstate"] = "0"
			s.stopWatchdogLocked()
		case !prevWen || first(q, "wstate") == "1":
			s.vals["6_wstate"] = "1"
			s.armWatchdogLocked()
		}
	}
	return nil
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func q2has(q map[string][]string, k string) bool { _, ok := q[k]; return ok }

func boolish(k string) bool {
	switch k {
	case "sz", "mode", "rm", "p0", "p1", "dhcp", "pwd", "wen", "as", "men", "log":
		return true
	}
	return false
}
