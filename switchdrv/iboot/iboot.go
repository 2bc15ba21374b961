// Package iboot drives a Dataprobe iBoot, a one-outlet power switch used to
// fence a node, by either of its protocols (shared/reference/devices.md):
//
//   - classic TCP: send ESC, password, ESC, action, CR, where the action is
//     n (on), f (off), c (cycle) or q (query); the device answers ON, OFF,
//     CYCLE or BUSY and closes the connection. It serves one session at a
//     time and answers BUSY to a second.
//   - HTTP (newer models): GET /?s=0|1|2&u=<user>&p=<password>, where 2 is
//     a query; the HTML reply contains <status>ON</status> or OFF.
//
// Both protocols carry the password in clear text: put the iBoot on the
// cluster's private network, never on a shared LAN.
//
// Where devices.md is silent this driver chooses, and the simulator
// (ibootsim) does the same: the classic protocol listens on port 80 by
// default; a connection closed without any reply after the password was
// sent means the password was wrong (ErrAuth); HTTP 401 means bad
// credentials and 503 busy; cycling over HTTP is off, a pause of
// cycle_delay, on (the "t" parameter's meaning is not published, so it is
// not used).
//
// Every change is verified by a separate query, so that [switchdrv.Fenced]
// can trust an "off".
//
// # When the agent or its node dies
//
// Nothing happens: the outlet keeps its state. The iBoot is for fencing the
// peer, and the agent that fences must be alive to do it.
//
// # Registry options ("iboot")
//
//	address          host name or IP (required)
//	port             TCP port (80)
//	protocol         tcp (classic, default) or http
//	user             HTTP user (admin; the classic protocol has none)
//	password         password (required)
//	timeout          per exchange (3s)
//	verify_timeout   how long to query after a change (5s)
//	cycle_timeout    how long a cycle may take before the outlet is on again (30s)
//	cycle_delay      HTTP only: time off during a cycle (5s)
package iboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/internal/devctx"
)

// Outlet is the name of the iBoot's single outlet.
const Outlet = "1"

func init() {
	switchdrv.Register("iboot", func(o switchdrv.Options) (switchdrv.Device, error) {
		c, err := ParseOptions(o)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Config configures a [Device].
type Config struct {
	Address       string
	Port          int
	HTTP          bool // HTTP query form instead of the classic protocol
	User          string
	Password      string
	Timeout       time.Duration
	VerifyTimeout time.Duration
	CycleTimeout  time.Duration
	CycleDelay    time.Duration
}

// ParseOptions reads a Config from registry options.
func ParseOptions(o switchdrv.Options) (Config, error) {
	r := switchdrv.NewOptionReader("iboot", o)
	c := Config{
		Address:       r.Required("address"),
		Port:          r.Int("port", 80, 1, 65535),
		HTTP:          r.OneOf("protocol", "tcp", "tcp", "http") == "http",
		User:          r.String("user", "admin"),
		Password:      r.Raw("password", ""),
		Timeout:       r.Duration("timeout", 3*time.Second),
		VerifyTimeout: r.Duration("verify_timeout", 5*time.Second),
		CycleTimeout:  r.Duration("cycle_timeout", 30*time.Second),
		CycleDelay:    r.Duration("cycle_delay", 5*time.Second),
	}
	if c.Password == "" {
		r.Failf("password", "is required (an iBoot always has one; the factory default is PASS)")
	}
	for _, ch := range c.Password {
		if ch == 0x1b || ch == '\r' || ch == '\n' {
			r.Failf("password", "must not contain ESC, CR or LF: they frame the classic protocol")
			break
		}
	}
	return c, r.Done()
}

// Device is one iBoot; a [switchdrv.PowerSwitch] and [switchdrv.Checker].
type Device struct {
	cfg  Config
	name string
	life *devctx.Lifetime
	hc   *http.Client
	mu   sync.Mutex // the iBoot serves one session at a time: so do we
}

var (
	_ switchdrv.PowerSwitch = (*Device)(nil)
	_ switchdrv.Checker     = (*Device)(nil)
)

// New returns a Device; it does no I/O.
func New(c Config) *Device {
	return &Device{
		cfg:  c,
		name: "iboot " + c.Address,
		life: devctx.New(),
		hc: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Name implements switchdrv.Device.
func (d *Device) Name() string { return d.name }

// Close ends calls in flight.
func (d *Device) Close() error {
	d.life.Close()
	return nil
}

// action is one request, named for both protocols.
type action struct {
	tcp  byte   // classic protocol letter
	http string // value of s=
	word string // for messages
}

var (
	actOn    = action{'n', "1", "on"}
	actOff   = action{'f', "0", "off"}
	actCycle = action{'c', "", "cycle"}
	actQuery = action{'q', "2", "query"}
)

// exchange performs one request and returns the device's reply. BUSY comes
// back as an ErrBusy error.
func (d *Device) exchange(ctx context.Context, op string, a action) (Reply, error) {
	if d.life.Closed() {
		return "", switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
	}
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	var r Reply
	var err error
	if d.cfg.HTTP {
		r, err = d.exchangeHTTP(ctx, op, a)
	} else {
		r, err = d.exchangeTCP(ctx, op, a)
	}
	if err != nil {
		return "", err
	}
	if r == ReplyBusy {
		return "", switchdrv.Errorf(switchdrv.ErrBusy, d.name, op, "the device answered BUSY")
	}
	return r, nil
}

func (d *Device) exchangeTCP(ctx context.Context, op string, a action) (Reply, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(d.cfg.Address, strconv.Itoa(d.cfg.Port)))
	if err != nil {
		return "", d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	msg := "\x1b" + d.cfg.Password + "\x1b" + string(a.tcp) + "\r"
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	// The device closes the connection after its reply: read to EOF.
	b, err := io.ReadAll(io.LimitReader(conn, 256))
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		if ctx.Err() != nil && !d.life.Closed() {
			err = fmt.Errorf("no reply within %v: %w", d.cfg.Timeout, err)
		}
		return "", d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	r, perr := ParseTCPReply(b)
	if errors.Is(perr, errNoReply) {
		return "", switchdrv.NewError(switchdrv.ErrAuth, d.name, op, perr).
			WithHint("the iBoot hangs up on a wrong password: check password in this switch's options")
	}
	if perr != nil {
		return "", switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, perr)
	}
	return r, nil
}

func (d *Device) exchangeHTTP(ctx context.Context, op string, a action) (Reply, error) {
	q := url.Values{"s": {a.http}, "u": {d.cfg.User}, "p": {d.cfg.Password}}
	u := "http://" + net.JoinHostPort(d.cfg.Address, strconv.Itoa(d.cfg.Port)) + "/?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		// The URL holds the password: never let it into a message.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", switchdrv.Errorf(switchdrv.ErrAuth, d.name, op, "HTTP %s for user %q", resp.Status, d.cfg.User)
	case http.StatusServiceUnavailable:
		return "", switchdrv.Errorf(switchdrv.ErrBusy, d.name, op, "HTTP 503")
	default:
		return "", switchdrv.Errorf(switchdrv.ErrBadReply, d.name, op, "HTTP %s", resp.Status)
	}
	r, err := ParseHTTPStatus(body)
	if err != nil {
		return "", switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, err)
	}
	return r, nil
}

func checkOutlet(name, op, outlet string) error {
	if outlet != Outlet {
		return switchdrv.Errorf(switchdrv.ErrConfig, name, op, "no outlet %q: an iBoot has one outlet, %q", outlet, Outlet)
	}
	return nil
}

func toPower(r Reply) switchdrv.Power {
	switch r {
	case ReplyOn:
		return switchdrv.PowerOn
	case ReplyOff:
		return switchdrv.PowerOff
	}
	return switchdrv.PowerUnknown // CYCLE: on its way
}

// Outlets implements switchdrv.PowerSwitch.
func (d *Device) Outlets(context.Context) ([]string, error) { return []string{Outlet}, nil }

// Power implements switchdrv.PowerSwitch.
func (d *Device) Power(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	const op = "query"
	if err := checkOutlet(d.name, op, outlet); err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.exchange(ctx, op, actQuery)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	p := toPower(r)
	return switchdrv.PowerState{Outlet: outlet, Power: p, Verified: p != switchdrv.PowerUnknown}, nil
}

// Check implements switchdrv.Checker with a query.
func (d *Device) Check(ctx context.Context) error {
	_, err := d.Power(ctx, Outlet)
	return err
}

// SetPower implements switchdrv.PowerSwitch: the command, then queries
// until the outlet reads as commanded.
func (d *Device) SetPower(ctx context.Context, outlet string, on bool) (switchdrv.PowerState, error) {
	a, want := actOff, switchdrv.PowerOff
	if on {
		a, want = actOn, switchdrv.PowerOn
	}
	op := "switch " + a.word
	if err := checkOutlet(d.name, op, outlet); err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.exchange(ctx, op, a)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	return d.verify(ctx, op, toPower(r), want, d.cfg.VerifyTimeout)
}

// Cycle implements switchdrv.PowerSwitch.
func (d *Device) Cycle(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	const op = "cycle"
	if err := checkOutlet(d.name, op, outlet); err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.HTTP {
		r, err := d.exchange(ctx, op+": off", actOff)
		if err != nil {
			return switchdrv.PowerState{Outlet: outlet}, err
		}
		if st, err := d.verify(ctx, op+": off", toPower(r), switchdrv.PowerOff, d.cfg.VerifyTimeout); err != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return switchdrv.PowerState{Outlet: outlet, Power: switchdrv.PowerOff, Verified: true},
				d.life.Classify(ctx.Err(), d.name, op, switchdrv.ErrUnreachable)
		case <-d.life.Done():
			return switchdrv.PowerState{Outlet: outlet, Power: switchdrv.PowerOff, Verified: true},
				switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
		case <-time.After(d.cfg.CycleDelay):
		}
		r, err = d.exchange(ctx, op+": on", actOn)
		if err != nil {
			return switchdrv.PowerState{Outlet: outlet}, err
		}
		return d.verify(ctx, op+": on", toPower(r), switchdrv.PowerOn, d.cfg.VerifyTimeout)
	}
	r, err := d.exchange(ctx, op, actCycle)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	return d.verify(ctx, op, toPower(r), switchdrv.PowerOn, d.cfg.CycleTimeout)
}

// verify queries until the outlet reads want. The command's own reply is
// not taken as proof: a separate query is (devices.md: query status after
// off to prove it took). Callers hold mu.
func (d *Device) verify(ctx context.Context, op string, replied, want switchdrv.Power, limit time.Duration) (switchdrv.PowerState, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	st := switchdrv.PowerState{Outlet: Outlet, Power: replied}
	var lastErr error
	for {
		r, err := d.exchange(ctx, op+" (verify)", actQuery)
		switch {
		case err == nil:
			st.Power = toPower(r)
			if st.Power == want {
				st.Verified = true
				return st, nil
			}
		case switchdrv.KindOf(err) == switchdrv.ErrBusy, switchdrv.KindOf(err) == switchdrv.ErrUnreachable:
			lastErr = err // worth asking again
		default:
			return st, err
		}
		select {
		case <-ctx.Done():
			if d.life.Closed() {
				return st, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
			}
			cause := fmt.Errorf("after %v the outlet reads %q, want %q", limit, st.Power, want)
			if lastErr != nil {
				cause = fmt.Errorf("%w; last query: %v", cause, lastErr)
			}
			return st, switchdrv.NewError(switchdrv.ErrVerifyTimeout, d.name, op, cause)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
