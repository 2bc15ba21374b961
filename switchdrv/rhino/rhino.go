// Package rhino drives a Rhino 1SPF PRI failover relay card on a USB serial
// port (shared/reference/devices.md).
//
// The card is powered from the USB port of one node. With its relay
// powered ([PositionNO]) the span goes to that node; with the relay off or
// the card unpowered ([PositionNC]) it goes to the other node. The card
// cannot report its relay position, so every state this driver returns is
// unverified; the agent must never treat it as proof of where the lines are.
//
// The card's serial bytes, baud rate and replies are not public. The driver
// therefore works in one of two modes:
//
//   - cli (default): run the vendor's tool, "rhinofailover <device>
//     RELAYON|RELAYOFF <relay>" and "RESET", and trust its exit code.
//   - serial: send configured command strings through
//     github.com/tarm/serial and wait for a configured reply. Nothing is
//     guessed: cmd_on and cmd_off must be given.
//
// In both modes the driver takes an exclusive flock on the device node, so
// two agents (or an agent and the vendor's daemon run by hatui) never drive
// one card; a second one gets ErrBusy. In serial mode every read has a
// timeout (read_timeout): without one, closing the port would block until
// the card sent a byte.
//
// # When the agent or its node dies
//
// If the node that powers the card dies or loses power, the card loses USB
// power and the relay falls to NC: the span goes to the other node, which is
// what a failover needs. If only the agent dies, the relay keeps its last
// position: the card has no watchdog. Run the agent under a supervisor that
// switches the relay off when the agent stops (for example a systemd
// ExecStopPost running "rhinofailover <device> RELAYOFF 0"), so that a dead
// agent hands the span to the other node.
//
// # Registry options ("rhino")
//
//	device        serial device of the card, e.g. /dev/ttyUSB0 (required)
//	relay         relay number (0)
//	mode          cli (default) or serial
//	cli           vendor tool (rhinofailover, found in PATH)
//	baud          serial: baud rate (9600)
//	cmd_on        serial: bytes that power the relay (required in serial mode)
//	cmd_off       serial: bytes that release the relay (required in serial mode)
//	cmd_reset     serial: bytes that reset the card (optional)
//	cmd_check     serial: bytes answered with reply_ok, for health checks (optional)
//	reply_ok      serial: reply meaning done; empty: do not wait for one
//	reply_busy    serial: reply meaning busy (optional)
//	reply_error   serial: reply meaning failed (optional)
//	read_timeout  serial: one read's timeout, at least 100ms (100ms)
//	timeout       per command (3s)
//
// Command and reply strings take \r, \n, \t, \\ and \xNN escapes, and
// {relay} is replaced by the relay number.
package rhino

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tarm/serial"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/internal/devctx"
)

// Positions of the relay.
const (
	PositionNO switchdrv.Position = "NO" // relay powered: span to the node powering the card
	PositionNC switchdrv.Position = "NC" // relay off or card unpowered: span to the other node
)

func init() {
	switchdrv.Register("rhino", func(o switchdrv.Options) (switchdrv.Device, error) {
		c, err := ParseOptions(o)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Config configures a [Device].
type Config struct {
	Device      string
	Relay       int
	Serial      bool   // serial mode; CLI mode otherwise
	CLI         string // vendor tool
	Baud        int
	CmdOn       string // unescaped bytes
	CmdOff      string
	CmdReset    string
	CmdCheck    string
	Replies     Replies
	ReadTimeout time.Duration
	Timeout     time.Duration
}

// ParseOptions reads a Config from registry options.
func ParseOptions(o switchdrv.Options) (Config, error) {
	r := switchdrv.NewOptionReader("rhino", o)
	c := Config{
		Device:      r.Required("device"),
		Relay:       r.Int("relay", 0, 0, 255),
		Serial:      r.OneOf("mode", "cli", "cli", "serial") == "serial",
		CLI:         r.String("cli", "rhinofailover"),
		Baud:        r.Int("baud", 9600, 50, 4000000),
		ReadTimeout: r.Duration("read_timeout", 100*time.Millisecond),
		Timeout:     r.Duration("timeout", 3*time.Second),
	}
	esc := func(key string) string {
		v, err := Unescape(r.Raw(key, ""), c.Relay)
		if err != nil {
			r.Failf(key, "%v", err)
		}
		return v
	}
	c.CmdOn, c.CmdOff, c.CmdReset, c.CmdCheck = esc("cmd_on"), esc("cmd_off"), esc("cmd_reset"), esc("cmd_check")
	c.Replies = Replies{OK: esc("reply_ok"), Busy: esc("reply_busy"), Error: esc("reply_error")}
	if c.Serial && (c.CmdOn == "" || c.CmdOff == "") {
		r.Failf("cmd_on", "and cmd_off are required in serial mode: the card's serial commands are not public, "+
			"so copy them from the vendor's library, or use mode=cli")
	}
	if c.ReadTimeout < 100*time.Millisecond {
		// The tty layer counts read timeouts in tenths of a second.
		r.Failf("read_timeout", "must be at least 100ms")
	}
	return c, r.Done()
}

// Device is one Rhino card; a [switchdrv.LineSwitch] and
// [switchdrv.Checker].
type Device struct {
	cfg  Config
	name string
	life *devctx.Lifetime

	opMu sync.Mutex // one command at a time
	last switchdrv.Position

	portMu sync.Mutex // guards lock and port, which Close also touches
	lock   *os.File
	port   *serial.Port
}

var (
	_ switchdrv.LineSwitch = (*Device)(nil)
	_ switchdrv.Checker    = (*Device)(nil)
)

// New returns a Device; it does no I/O.
func New(c Config) *Device {
	return &Device{cfg: c, name: "rhino " + c.Device, life: devctx.New()}
}

// Name implements switchdrv.Device.
func (d *Device) Name() string { return d.name }

// Capabilities implements switchdrv.LineSwitch: two positions, NC is the
// failsafe, no read-back, no watchdog.
func (d *Device) Capabilities() switchdrv.Capabilities {
	return switchdrv.Capabilities{
		Positions: []switchdrv.Position{PositionNO, PositionNC},
		Failsafe:  PositionNC,
	}
}

// Close closes the port and releases the lock. A command in progress
// returns ErrClosed within one read timeout.
func (d *Device) Close() error {
	d.life.Close()
	d.portMu.Lock()
	defer d.portMu.Unlock()
	var err error
	if d.port != nil {
		// The port is in blocking mode with a read timeout: Close does not
		// wait for a Read in progress, which returns within read_timeout
		// and then sees the device closed.
		err = d.port.Close()
		d.port = nil
	}
	if d.lock != nil {
		d.lock.Close() // closing the descriptor drops the flock
		d.lock = nil
	}
	return err
}

// acquire takes the device's flock if not yet held. Callers hold portMu.
func (d *Device) acquire(op string) error {
	if d.lock != nil {
		return nil
	}
	f, err := os.OpenFile(d.cfg.Device, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return switchdrv.NewError(switchdrv.ErrUnreachable, d.name, op, err).
			WithHint("check that the card is plugged in and the device name is right")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return switchdrv.Errorf(switchdrv.ErrBusy, d.name, op, "another process holds the lock on %s", d.cfg.Device).
				WithHint("stop the other program driving the card (fuser " + d.cfg.Device + ")")
		}
		return switchdrv.NewError(switchdrv.ErrUnreachable, d.name, op, err)
	}
	d.lock = f
	return nil
}

// openPort returns the open serial port, opening it and taking the lock if
// needed.
func (d *Device) openPort(op string) (*serial.Port, error) {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	if d.life.Closed() {
		return nil, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
	}
	if err := d.acquire(op); err != nil {
		return nil, err
	}
	if d.port != nil {
		return d.port, nil
	}
	p, err := serial.OpenPort(&serial.Config{
		Name: d.cfg.Device, Baud: d.cfg.Baud, Size: 8,
		Parity: serial.ParityNone, StopBits: serial.Stop1,
		ReadTimeout: d.cfg.ReadTimeout,
	})
	if err != nil {
		return nil, switchdrv.NewError(switchdrv.ErrUnreachable, d.name, op, err)
	}
	d.port = p
	return p, nil
}

// dropPort closes a port that failed, so the next command reopens it (the
// USB device may have been replugged).
func (d *Device) dropPort(p *serial.Port) {
	d.portMu.Lock()
	defer d.portMu.Unlock()
	if d.port == p {
		d.port.Close()
		d.port = nil
	}
}

// send writes one command and, if a reply is configured, reads until it
// comes, the deadline passes, or the device is closed.
func (d *Device) send(ctx context.Context, op, cmd string) error {
	p, err := d.openPort(op)
	if err != nil {
		return err
	}
	// Stale bytes (a late reply to an earlier command) must not be taken
	// for the answer to this one.
	p.Flush()
	if _, err := p.Write([]byte(cmd)); err != nil {
		d.dropPort(p)
		return d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
	}
	if d.cfg.Replies.OK == "" {
		return nil
	}
	var got []byte
	buf := make([]byte, 64)
	for {
		n, err := p.Read(buf)
		got = append(got, buf[:n]...)
		if d.life.Closed() {
			return switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
		}
		if n > 0 {
			switch o, perr := ParseReply(got, d.cfg.Replies); o {
			case OK:
				return nil
			case Busy:
				return switchdrv.Errorf(switchdrv.ErrBusy, d.name, op, "the card answered %q", got)
			case Failed:
				return switchdrv.Errorf(switchdrv.ErrBadReply, d.name, op, "the card answered %q (its error reply)", got)
			case Unexpected:
				return switchdrv.NewError(switchdrv.ErrBadReply, d.name, op, perr)
			}
		}
		// On Linux a read timeout reads as 0, io.EOF; anything else is a
		// real failure of the port.
		if err != nil && !(n == 0 && errors.Is(err, io.EOF)) {
			d.dropPort(p)
			return d.life.Classify(err, d.name, op, switchdrv.ErrUnreachable)
		}
		if ctx.Err() != nil {
			if len(got) == 0 {
				return switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op, "no reply within %v", d.cfg.Timeout)
			}
			return switchdrv.Errorf(switchdrv.ErrBadReply, d.name, op, "incomplete reply %q after %v", got, d.cfg.Timeout)
		}
	}
}

// runCLI runs the vendor tool with the given words after the device.
func (d *Device) runCLI(ctx context.Context, op string, args ...string) error {
	d.portMu.Lock()
	err := d.acquire(op)
	d.portMu.Unlock()
	if err != nil {
		return err
	}
	path, err := exec.LookPath(d.cfg.CLI)
	if err != nil {
		return switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err).
			WithHint("install the Rhino tools, set cli to the rhinofailover path, or use mode=serial")
	}
	cmd := exec.CommandContext(ctx, path, append([]string{d.cfg.Device}, args...)...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err == nil {
		return nil
	}
	if d.life.Closed() {
		return switchdrv.NewError(switchdrv.ErrClosed, d.name, op, err)
	}
	if ctx.Err() != nil {
		return switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op, "%s did not finish within %v", d.cfg.CLI, d.cfg.Timeout)
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 200 {
		msg = msg[len(msg)-200:]
	}
	return switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op, "%s %s: %v: %s", d.cfg.CLI, strings.Join(args, " "), err, msg)
}

// command runs one relay command in the configured mode.
func (d *Device) command(ctx context.Context, op, cliWord, serialCmd string) error {
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	if d.cfg.Serial {
		return d.send(ctx, op, serialCmd)
	}
	args := []string{cliWord}
	if cliWord != "RESET" {
		args = append(args, strconv.Itoa(d.cfg.Relay))
	}
	return d.runCLI(ctx, op, args...)
}

// LineState implements switchdrv.LineSwitch: the last position commanded,
// never verified, or "" before the first command.
func (d *Device) LineState(context.Context) (switchdrv.LineState, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.life.Closed() {
		return switchdrv.LineState{}, switchdrv.NewError(switchdrv.ErrClosed, d.name, "read position", nil)
	}
	return switchdrv.LineState{Position: d.last}, nil
}

// SetPosition implements switchdrv.LineSwitch. The state it returns is
// unverified: the card cannot be asked.
func (d *Device) SetPosition(ctx context.Context, p switchdrv.Position) (switchdrv.LineState, error) {
	op := "set position " + string(p)
	var word, cmd string
	switch p {
	case PositionNO:
		word, cmd = "RELAYON", d.cfg.CmdOn
	case PositionNC:
		word, cmd = "RELAYOFF", d.cfg.CmdOff
	default:
		return switchdrv.LineState{}, switchdrv.Errorf(switchdrv.ErrUnsupported, d.name, op,
			"a Rhino card has positions %s and %s", PositionNO, PositionNC)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := d.command(ctx, op, word, cmd); err != nil {
		// Whether the relay moved is unknown now.
		d.last = ""
		return switchdrv.LineState{}, err
	}
	d.last = p
	return switchdrv.LineState{Position: p}, nil
}

// Reset resets the card. Its relay position is unknown afterwards.
func (d *Device) Reset(ctx context.Context) error {
	const op = "reset"
	if d.cfg.Serial && d.cfg.CmdReset == "" {
		return switchdrv.Errorf(switchdrv.ErrUnsupported, d.name, op, "no cmd_reset configured")
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.last = ""
	return d.command(ctx, op, "RESET", d.cfg.CmdReset)
}

// Check implements switchdrv.Checker: it sends cmd_check when configured,
// and otherwise proves that the device node exists and can be locked.
func (d *Device) Check(ctx context.Context) error {
	const op = "check"
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if d.cfg.Serial && d.cfg.CmdCheck != "" {
		ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
		defer cancel()
		return d.send(ctx, op, d.cfg.CmdCheck)
	}
	d.portMu.Lock()
	defer d.portMu.Unlock()
	if d.life.Closed() {
		return switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
	}
	if err := d.acquire(op); err != nil {
		return err
	}
	if _, err := os.Stat(d.cfg.Device); err != nil {
		return switchdrv.NewError(switchdrv.ErrUnreachable, d.name, op, fmt.Errorf("device gone: %w", err))
	}
	return nil
}
