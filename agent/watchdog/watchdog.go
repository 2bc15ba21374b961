// Package watchdog keeps a Linux watchdog device fed while the agent is
// healthy, so that an agent that hangs or dies resets its node before a
// peer may take over the service group the node still runs (sbd's idea).
//
// The device is /dev/watchdog: a hardware timer on the board, or the
// kernel's softdog. Opening it arms it; every write feeds it; if the
// writes stop for its timeout, the node resets. Closing it after writing
// the magic character 'V' disarms it (on drivers that honour the magic
// close); closing it without, as a dying process does, leaves it armed.
// Linux watchdog timeouts are whole seconds.
//
// Inspect checks a device without arming it for good (check-config), and
// Load loads softdog with modprobe when the device is missing (the agent's
// start); both say what they found, so that an operator can tell a real
// watchdog from a file standing in for one.
package watchdog

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Device is an open, armed watchdog.
type Device struct {
	path     string
	f        *os.File
	kind     Kind
	identity string
	timeout  time.Duration
	every    time.Duration

	mu     sync.Mutex
	last   time.Time
	err    error
	closed bool
}

// Open arms the watchdog at path with timeout, rounded up to whole
// seconds. On a character device the timeout is set with
// WDIOC_SETTIMEOUT and read back (the driver may round it); a path that
// is not a device (a FIFO or file, for tests) is only written to.
func Open(path string, timeout time.Duration) (*Device, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("watchdog %s: timeout %v is not positive", path, timeout)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening watchdog %s: %w (load a driver, e.g. modprobe softdog, or remove failover.watchdog)", path, err)
	}
	d := &Device{path: path, f: f, timeout: timeout, kind: KindStandIn}
	if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		d.kind = KindDevice
		if info, err := unix.IoctlGetWatchdogInfo(int(f.Fd())); err == nil {
			d.identity = string(bytes.TrimRight(info.Identity[:], "\x00"))
		}
		secs := int((timeout + time.Second - 1) / time.Second)
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
			d.disarmAndClose()
			return nil, fmt.Errorf("setting watchdog %s timeout to %ds: %w", path, secs, err)
		}
		got, err := unix.IoctlGetInt(int(f.Fd()), unix.WDIOC_GETTIMEOUT)
		if err != nil {
			d.disarmAndClose()
			return nil, fmt.Errorf("reading watchdog %s timeout: %w", path, err)
		}
		d.timeout = time.Duration(got) * time.Second
		if d.timeout > timeout+time.Second {
			d.disarmAndClose()
			return nil, fmt.Errorf("watchdog %s: the driver set a timeout of %v for the %v asked: too long to reset the node before a peer takes over", path, d.timeout, timeout)
		}
	}
	// Feed it well within the timeout, but not on every call.
	d.every = max(d.timeout/4, 10*time.Millisecond)
	d.Kick()
	return d, d.Err()
}

// Report says what was armed: a device with its identity and timeout, or
// a stand-in that resets nothing.
func (d *Device) Report() Report {
	r := Report{Path: d.path, Kind: d.kind, Identity: d.identity, Timeout: d.timeout}
	if d.kind == KindDevice {
		r.Note = "armed with WDIOC_SETTIMEOUT"
	}
	return r
}

// Timeout is the device's timeout.
func (d *Device) Timeout() time.Duration { return d.timeout }

// Kick feeds the watchdog, at most every quarter of its timeout. It never
// blocks for long: a watchdog write is a driver call.
func (d *Device) Kick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || time.Since(d.last) < d.every {
		return
	}
	if _, err := d.f.Write([]byte{'k'}); err != nil {
		d.err = fmt.Errorf("feeding watchdog %s: %w", d.path, err)
		return
	}
	d.last, d.err = time.Now(), nil
}

// Err is the last feeding error, nil when the last kick worked.
func (d *Device) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Close stops feeding. With disarm it writes the magic 'V' first, so the
// node does not reset; without, the watchdog stays armed and resets the
// node unless the next agent opens and feeds it in time (a restart).
func (d *Device) Close(disarm bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if disarm {
		if _, err := d.f.Write([]byte{'V'}); err != nil {
			d.f.Close()
			return fmt.Errorf("disarming watchdog %s: %w", d.path, err)
		}
	}
	return d.f.Close()
}

func (d *Device) disarmAndClose() {
	d.f.Write([]byte{'V'})
	d.f.Close()
}
