package watchdog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Kind is what a watchdog path turned out to be.
type Kind string

// Kinds of watchdog path.
const (
	// KindDevice is a character device: a hardware watchdog or softdog.
	KindDevice Kind = "device"
	// KindStandIn is a regular file or FIFO standing in for a device in
	// tests: it is fed like one, and resets nothing.
	KindStandIn Kind = "stand-in"
	// KindMissing: nothing is at the path.
	KindMissing Kind = "missing"
)

// Report is what Inspect found at a watchdog path.
type Report struct {
	Path string
	Kind Kind
	// Identity is the driver's name ("Software Watchdog"), when known.
	Identity string
	// Timeout is the device's timeout: as sysfs shows it, or as set by
	// the WDIOC_SETTIMEOUT test; zero when unknown.
	Timeout time.Duration
	// Note says what was done or found beyond the kind: the ioctl test,
	// why it was skipped, how the device will be loaded.
	Note string
}

// String is the report in one line, for check-config and the agent's log.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "watchdog %s: ", r.Path)
	switch r.Kind {
	case KindDevice:
		b.WriteString("a watchdog device")
		if r.Identity != "" {
			fmt.Fprintf(&b, " (%s)", r.Identity)
		}
		if r.Timeout > 0 {
			fmt.Fprintf(&b, ", timeout %v", r.Timeout)
		}
	case KindStandIn:
		b.WriteString("a file, not a device: a stand-in for tests that resets nothing")
	case KindMissing:
		b.WriteString("not there")
	}
	if r.Note != "" {
		b.WriteString("; " + r.Note)
	}
	return b.String()
}

// modprobe is the program that loads softdog, looked up on PATH.
const modprobe = "modprobe"

// Inspect finds out, without arming it for good, whether path is a
// watchdog that Open can arm with timeout. A character device is opened,
// asked its identity, set to timeout with WDIOC_SETTIMEOUT and closed with
// the magic 'V' again, unless sysfs says it is active already (the running
// agent feeds it: a second open would fail) or has nowayout set (an open
// would arm it until the next reset). A missing path is an error unless
// softdog can be loaded, which Load does at the agent's start. The error
// says what is wrong and what to do.
func Inspect(path string, timeout time.Duration) (Report, error) {
	r := Report{Path: path}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		r.Kind = KindMissing
		if err := canLoadSoftdog(); err != nil {
			return r, fmt.Errorf("watchdog %s is not there and %w", path, err)
		}
		r.Note = "the agent loads softdog (modprobe softdog) at start"
		return r, nil
	case err != nil:
		return r, fmt.Errorf("watchdog %s: %w", path, err)
	case fi.Mode()&os.ModeCharDevice == 0:
		if fi.Mode().IsRegular() || fi.Mode()&os.ModeNamedPipe != 0 {
			r.Kind = KindStandIn
			return r, nil
		}
		return r, fmt.Errorf("watchdog %s is a %s, not a watchdog device: set failover.watchdog to /dev/watchdog", path, fi.Mode().Type())
	}
	r.Kind = KindDevice
	sys := sysfsDir(path)
	r.Identity = readSys(sys, "identity")
	if s, err := strconv.Atoi(readSys(sys, "timeout")); err == nil {
		r.Timeout = time.Duration(s) * time.Second
	}
	switch {
	case readSys(sys, "state") == "active":
		r.Note = "active: a running agent feeds it, so it was not opened here"
		return r, nil
	case readSys(sys, "nowayout") == "1":
		r.Note = "nowayout is set: not opened here, an open would arm it until the node resets"
		return r, nil
	}
	d, err := Open(path, timeout)
	if errors.Is(err, unix.EBUSY) {
		r.Note = "busy: another process (a running agent?) holds it"
		return r, nil
	}
	if err != nil {
		return r, err
	}
	r.Identity, r.Timeout = d.identity, d.timeout
	if err := d.Close(true); err != nil {
		return r, err
	}
	r.Note = fmt.Sprintf("answered WDIOC_SETTIMEOUT (%v), disarmed again", d.timeout)
	return r, nil
}

// canLoadSoftdog says why softdog cannot be loaded, nil when modprobe
// would find it.
func canLoadSoftdog() error {
	bin, err := exec.LookPath(modprobe)
	if err != nil {
		return errors.New("there is no modprobe to load softdog (a kernel without loadable modules?): use a hardware watchdog's device, build the kernel with CONFIG_SOFT_WATCHDOG=y, or remove failover.watchdog and give the nodes fencing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--dry-run", "softdog").CombinedOutput()
	if err != nil {
		return fmt.Errorf("modprobe cannot load softdog (%s): install the kernel's extra modules, or use a hardware watchdog", strings.TrimSpace(string(out)))
	}
	return nil
}

// Load makes sure path exists before Open: when it is missing, it loads
// softdog with modprobe and waits for the device to appear. It returns what
// it did ("" when the path was there), or an error saying what to do.
func Load(path string) (string, error) {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err := canLoadSoftdog(); err != nil {
		return "", fmt.Errorf("watchdog %s is not there and %w", path, err)
	}
	bin, _ := exec.LookPath(modprobe)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "softdog").CombinedOutput(); err != nil {
		return "", fmt.Errorf("loading softdog for watchdog %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	// devtmpfs creates the node as the driver registers; udev may take
	// a moment longer.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(path); err == nil {
			return "loaded softdog with modprobe", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("loaded softdog, but %s did not appear within 5s: check the device name (ls /dev/watchdog*)", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sysfsDir is the sysfs directory of the watchdog at path: /dev/watchdog
// is the legacy alias of watchdog0, /dev/watchdogN is watchdogN.
func sysfsDir(path string) string {
	name := filepath.Base(path)
	if name == "watchdog" {
		name = "watchdog0"
	}
	return filepath.Join("/sys/class/watchdog", name)
}

func readSys(dir, file string) string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
