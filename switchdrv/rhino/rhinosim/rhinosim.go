// Package rhinosim is a Rhino 1SPF card on a pseudo-terminal: the driver
// opens the slave side (Path) with github.com/tarm/serial as it would
// /dev/ttyUSB0, and the simulator answers on the master side.
//
// The card's real serial bytes are not public (devices.md), so the
// simulator speaks configurable strings, by default the vendor CLI's words
// ("RELAYON 0\r", "RELAYOFF 0\r", "RESET\r", "STATUS\r") answered by
// "OK\r\n", "BUSY\r\n" or "ERR\r\n". [Sim.DriverOptions] configures the
// driver with the same strings, which is the point: the test proves the
// driver sends what it is configured to send and reads what comes back.
package rhinosim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/rhino"
)

// Fault is a way for the simulated card to misbehave.
type Fault int

// Faults.
const (
	FaultNone     Fault = iota
	FaultNoAnswer       // commands are read and never answered
	FaultBusy           // every command is answered with the busy reply
	FaultGarbage        // every command is answered with noise (a corrupted reply)
	FaultSlow           // replies wait SlowDelay first
)

// Options configure the simulated card's wire strings; empty fields take
// the defaults in the package documentation.
type Options struct {
	CmdOn, CmdOff, CmdReset, CmdCheck string
	ReplyOK, ReplyBusy, ReplyError    string
}

// Sim is a running simulated card.
type Sim struct {
	opts   Options
	master *os.File
	slave  *os.File // held open so the master never reads EIO between driver sessions
	path   string
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu       sync.Mutex
	powered  bool // relay powered: NO
	fault    Fault
	slow     time.Duration
	commands []string
}

// Start opens a pty pair and starts answering on it.
func Start(o Options) (*Sim, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.CmdOn, "RELAYON 0\r")
	def(&o.CmdOff, "RELAYOFF 0\r")
	def(&o.CmdReset, "RESET\r")
	def(&o.CmdCheck, "STATUS\r")
	def(&o.ReplyOK, "OK\r\n")
	def(&o.ReplyBusy, "BUSY\r\n")
	def(&o.ReplyError, "ERR\r\n")

	master, path, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("rhinosim: %w", err)
	}
	slave, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("rhinosim: open %s: %w", path, err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("rhinosim: raw mode: %w", err)
	}
	s := &Sim{opts: o, master: master, slave: slave, path: path, done: make(chan struct{}), slow: 2 * time.Second}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.serve() }()
	return s, nil
}

// openPTY opens /dev/ptmx and unlocks its slave, returning the master and
// the slave's path. The master stays non-blocking so that Go's poller
// serves its reads and Close interrupts them.
func openPTY() (*os.File, string, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/ptmx: %w", err)
	}
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		return nil, "", err
	}
	var n int
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		m.Close()
		return nil, "", fmt.Errorf("unlock pty: %w", err)
	}
	return m, "/dev/pts/" + strconv.Itoa(n), nil
}

// makeRaw turns off echo and line editing on the tty, so that the bytes the
// driver writes reach the master unchanged even before tarm/serial
// configures the port.
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		var t *unix.Termios
		if t, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS); ioErr != nil {
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return ioErr
}

// Close stops the simulator and removes the pty.
func (s *Sim) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.master.Close()
		s.slave.Close()
		s.wg.Wait()
	})
	return nil
}

// Path is the slave device to give the driver, like /dev/ttyUSB0.
func (s *Sim) Path() string { return s.path }

// DriverOptions configure the rhino driver in serial mode for this card.
func (s *Sim) DriverOptions() switchdrv.Options {
	return switchdrv.Options{
		"device": s.path, "mode": "serial",
		"cmd_on": s.opts.CmdOn, "cmd_off": s.opts.CmdOff,
		"cmd_reset": s.opts.CmdReset, "cmd_check": s.opts.CmdCheck,
		"reply_ok": s.opts.ReplyOK, "reply_busy": s.opts.ReplyBusy, "reply_error": s.opts.ReplyError,
		"timeout": "1s", "read_timeout": "100ms",
	}
}

// Position is where the relay sends the span.
func (s *Sim) Position() switchdrv.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.powered {
		return rhino.PositionNO
	}
	return rhino.PositionNC
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

// Commands returns every complete command received, in order, the
// unknown ones included.
func (s *Sim) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Unplug takes the card's USB power away: the relay falls to NC.
func (s *Sim) Unplug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.powered = false
}

func (s *Sim) serve() {
	var buf []byte
	b := make([]byte, 256)
	for {
		n, err := s.master.Read(b)
		if err != nil {
			if errors.Is(err, syscall.EIO) {
				// No slave open: cannot happen while we hold one, but
				// do not spin if it does.
				select {
				case <-s.done:
					return
				case <-time.After(10 * time.Millisecond):
					continue
				}
			}
			return
		}
		buf = append(buf, b[:n]...)
		for {
			cmd, rest, ok := s.next(buf)
			if !ok {
				break
			}
			buf = rest
			s.handle(cmd)
		}
		if len(buf) > 1024 {
			buf = nil
		}
	}
}

// next cuts the first complete command off buf: a known command string, or
// anything up to a CR or LF.
func (s *Sim) next(buf []byte) (cmd string, rest []byte, ok bool) {
	for _, c := range []string{s.opts.CmdOn, s.opts.CmdOff, s.opts.CmdReset, s.opts.CmdCheck} {
		if bytes.HasPrefix(buf, []byte(c)) {
			return c, buf[len(c):], true
		}
	}
	if i := bytes.IndexAny(buf, "\r\n"); i >= 0 {
		return string(buf[:i+1]), buf[i+1:], true
	}
	return "", buf, false
}

func (s *Sim) handle(cmd string) {
	s.mu.Lock()
	s.commands = append(s.commands, cmd)
	fault, slow := s.fault, s.slow
	reply := s.opts.ReplyOK
	switch {
	case fault == FaultNoAnswer:
		s.mu.Unlock()
		return
	case fault == FaultBusy:
		reply = s.opts.ReplyBusy
	case fault == FaultGarbage:
		reply = "\x15#?\xfe%\r\n"
	case cmd == s.opts.CmdOn:
		s.powered = true
	case cmd == s.opts.CmdOff, cmd == s.opts.CmdReset:
		s.powered = false
	case cmd == s.opts.CmdCheck:
	default:
		reply = s.opts.ReplyError
	}
	s.mu.Unlock()
	if fault == FaultSlow {
		// The late reply must not hold up the next command: a test that
		// gave up on this one goes on with the card.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-s.done:
			case <-time.After(slow):
				s.master.Write([]byte(reply))
			}
		}()
		return
	}
	s.master.Write([]byte(reply))
}
