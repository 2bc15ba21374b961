package failover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tarm/serial"
)

// SerialConfig configures a point-to-point serial heartbeat link (a null
// modem cable between the two nodes, Heartbeat's "serial /dev/ttyS0").
type SerialConfig struct {
	HeartbeatConfig
	// Device is the serial port, such as /dev/ttyS0.
	Device string
	// Baud is the line speed; 0 means 19200, Heartbeat's default. One
	// heartbeat is about 170 bytes: 90 ms at 19200 baud.
	Baud int
	// Peer is the node at the other end of the cable.
	Peer string
}

// serialReadTimeout bounds one read so that Close never waits for a byte
// (tarm/serial: without a timeout Close blocks while a Read is pending).
// It is VTIME's granularity.
const serialReadTimeout = 100 * time.Millisecond

// SerialPath is a running serial heartbeat link.
type SerialPath struct {
	cfg  SerialConfig
	tr   *tracker
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	mu   sync.Mutex
	port *serial.Port
	lock *os.File
}

// NewSerialPath starts the link. The device is opened (and reopened after
// errors) in the background, so that a USB serial adapter that appears
// late does not stop the agent; until then the link's detail says why it
// is down.
func NewSerialPath(cfg SerialConfig) (*SerialPath, error) {
	if err := cfg.validate(PathSerial); err != nil {
		return nil, err
	}
	if cfg.Baud == 0 {
		cfg.Baud = 19200
	}
	if cfg.Device == "" {
		return nil, errors.New("serial heartbeat path: no device: name the serial port, such as /dev/ttyS0")
	}
	if !nameRE.MatchString(cfg.Peer) || cfg.Peer == cfg.Node {
		return nil, fmt.Errorf("serial heartbeat path: peer %q is not the name of the node at the other end of the cable", cfg.Peer)
	}
	// A heartbeat must fit in one keepalive at this speed (10 bits a byte).
	if lineTime := time.Duration(maxHeartbeatLine/2*10) * time.Second / time.Duration(cfg.Baud); lineTime > cfg.Interval {
		return nil, fmt.Errorf("serial heartbeat path: at %d baud a heartbeat takes about %s, longer than the keepalive %s: raise baud or keepalive",
			cfg.Baud, lineTime.Round(time.Millisecond), cfg.Interval)
	}
	p := &SerialPath{cfg: cfg, tr: newTracker(cfg.HeartbeatConfig, cfg.Peer, incarnation()), done: make(chan struct{})}
	p.wg.Add(1)
	go p.run()
	return p, nil
}

// Kind implements Path.
func (p *SerialPath) Kind() string { return PathSerial }

// Links implements Path.
func (p *SerialPath) Links() []PathLink { return []PathLink{p.tr.link()} }

// open opens and locks the device.
func (p *SerialPath) open() (*serial.Port, error) {
	lock, err := os.OpenFile(p.cfg.Device, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", p.cfg.Device, err)
	}
	// Two programs on one heartbeat port would eat each other's lines.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another program (fuser %s)", p.cfg.Device, p.cfg.Device)
		}
		return nil, fmt.Errorf("locking %s: %w", p.cfg.Device, err)
	}
	port, err := serial.OpenPort(&serial.Config{Name: p.cfg.Device, Baud: p.cfg.Baud, ReadTimeout: serialReadTimeout})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("opening %s at %d baud: %w", p.cfg.Device, p.cfg.Baud, err)
	}
	p.mu.Lock()
	p.port, p.lock = port, lock
	p.mu.Unlock()
	return port, nil
}

func (p *SerialPath) closePort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.port != nil {
		p.port.Close()
		p.port = nil
	}
	if p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
}

// run opens the port, then reads and writes until an error, and again.
func (p *SerialPath) run() {
	defer p.wg.Done()
	for {
		port, err := p.open()
		if err == nil {
			err = p.session(port)
			p.closePort()
		}
		if err != nil {
			p.tr.fail("serial " + err.Error())
		}
		select {
		case <-p.done:
			return
		case <-time.After(time.Second):
		}
	}
}

// session serves one opened port until it fails or the path closes.
func (p *SerialPath) session(port *serial.Port) error {
	werr := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		for {
			if _, err := port.Write(p.tr.next(time.Now())); err != nil {
				werr <- fmt.Errorf("writing %s: %w", p.cfg.Device, err)
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var pending []byte
	buf := make([]byte, 512)
	for {
		select {
		case <-p.done:
			return nil
		case err := <-werr:
			return err
		default:
		}
		n, err := port.Read(buf)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", p.cfg.Device, err)
		}
		// tarm/serial reports a read timeout as 0, io.EOF.
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			p.line(pending[:i])
			pending = pending[i+1:]
		}
		if len(pending) > maxHeartbeatLine {
			// Noise without newlines: drop it and resynchronise.
			p.tr.reject(fmt.Errorf("%w: %d bytes without a newline", errHBMalformed, len(pending)), "")
			pending = pending[:0]
		}
	}
}

func (p *SerialPath) line(l []byte) {
	l = bytes.TrimLeft(l, "\x00\r\n")
	if len(l) == 0 {
		return
	}
	h, err := decodeHeartbeat(l, p.cfg.Key)
	if err != nil {
		p.tr.reject(err, "")
		return
	}
	if h.Cluster != p.cfg.Cluster || h.To != p.cfg.Node || h.From != p.cfg.Peer {
		p.tr.reject(fmt.Errorf("%w: from %s to %s in cluster %s (is the cable on the right port?)", errNotForUs, h.From, h.To, h.Cluster), "")
		return
	}
	p.tr.receive(h, time.Now())
}

// Close implements Path.
func (p *SerialPath) Close() error {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
	})
	return nil
}
