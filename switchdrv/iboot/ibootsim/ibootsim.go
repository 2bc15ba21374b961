// Package ibootsim is an iBoot power switch on loopback: the classic TCP
// protocol (ESC password ESC action CR → ON/OFF/CYCLE/BUSY, then close, one
// session at a time) and the HTTP query form (/?s=0|1|2&u=&p= →
// <status>ON</status>), with fault modes switchable at run time. Where
// shared/reference/devices.md is silent it behaves as the iboot driver
// expects and documents: a wrong password over TCP is answered by hanging
// up, over HTTP by 401.
package ibootsim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hatui/hatui/switchdrv"
)

// Fault is a way for the simulated device to misbehave.
type Fault int

// Faults.
const (
	FaultNone         Fault = iota
	FaultNoAnswer           // requests are read and never answered
	FaultBusy               // every request is answered BUSY (HTTP: 503)
	FaultGarbage            // replies are not ON/OFF (TCP) or lack <status> (HTTP)
	FaultUnauthorized       // every request is refused as if the password were wrong
	FaultSlow               // replies wait SlowDelay first
	FaultStuck              // on/off/cycle are answered but change nothing
)

// Options configure a simulator.
type Options struct {
	Password  string        // "PASS" (the factory default) if empty
	User      string        // HTTP user; "admin" if empty
	CycleTime time.Duration // how long a cycle keeps the outlet off; 200 ms if zero
	Off       bool          // start with the outlet off
}

// Sim is a running simulated iBoot.
type Sim struct {
	opts   Options
	tcpLn  net.Listener
	httpLn net.Listener
	srv    *http.Server
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	session sync.Mutex // held for the length of a TCP session

	mu       sync.Mutex
	on       bool
	fault    Fault
	slow     time.Duration
	sessions int
	changes  int
	cycleT   *time.Timer
}

// Start starts a simulator on 127.0.0.1 with ephemeral ports.
func Start(o Options) (*Sim, error) {
	if o.Password == "" {
		o.Password = "PASS"
	}
	if o.User == "" {
		o.User = "admin"
	}
	if o.CycleTime <= 0 {
		o.CycleTime = 200 * time.Millisecond
	}
	tcpLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ibootsim: listen: %w", err)
	}
	httpLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tcpLn.Close()
		return nil, fmt.Errorf("ibootsim: listen http: %w", err)
	}
	s := &Sim{opts: o, tcpLn: tcpLn, httpLn: httpLn, done: make(chan struct{}), on: !o.Off, slow: 2 * time.Second}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.srv.Serve(httpLn) }()
	go func() { defer s.wg.Done(); s.acceptTCP() }()
	return s, nil
}

// Close stops the simulator; safe to call more than once.
func (s *Sim) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.tcpLn.Close()
		s.srv.Close()
		s.mu.Lock()
		if s.cycleT != nil {
			s.cycleT.Stop()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// TCPAddr is the classic protocol's address.
func (s *Sim) TCPAddr() netip.AddrPort { return netip.MustParseAddrPort(s.tcpLn.Addr().String()) }

// HTTPAddr is the HTTP form's address.
func (s *Sim) HTTPAddr() netip.AddrPort { return netip.MustParseAddrPort(s.httpLn.Addr().String()) }

// DriverOptions are registry options reaching this simulator over the
// given protocol ("tcp" or "http"), with short timeouts for tests.
func (s *Sim) DriverOptions(protocol string) switchdrv.Options {
	port := s.TCPAddr().Port()
	if protocol == "http" {
		port = s.HTTPAddr().Port()
	}
	return switchdrv.Options{
		"address": "127.0.0.1", "port": strconv.Itoa(int(port)), "protocol": protocol,
		"user": s.opts.User, "password": s.opts.Password,
		"timeout": "1s", "verify_timeout": "1s", "cycle_timeout": "3s", "cycle_delay": "10ms",
	}
}

// On reports whether the outlet is on.
func (s *Sim) On() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.on
}

// SetOn switches the outlet as if by its front-panel button.
func (s *Sim) SetOn(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = on
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

// Sessions counts requests received over both protocols.
func (s *Sim) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Changes counts accepted on, off and cycle commands.
func (s *Sim) Changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes
}

// HoldSession occupies the device's one TCP session until release is
// called, so that other clients get BUSY.
func (s *Sim) HoldSession() (release func()) {
	s.session.Lock()
	return sync.OnceFunc(s.session.Unlock)
}

func (s *Sim) state() (Fault, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	return s.fault, s.slow
}

// do applies an action letter and returns the reply word.
func (s *Sim) do(act byte, stuck bool) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch act {
	case 'n', 'f':
		if !stuck {
			s.on = act == 'n'
			s.changes++
		}
	case 'c':
		if !stuck {
			s.changes++
			s.on = false
			if s.cycleT != nil {
				s.cycleT.Stop()
			}
			s.cycleT = time.AfterFunc(s.opts.CycleTime, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.on = true
			})
		}
		return "CYCLE", true
	case 'q':
	default:
		return "", false
	}
	if s.on {
		return "ON", true
	}
	return "OFF", true
}

func (s *Sim) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

func (s *Sim) acceptTCP() {
	for {
		c, err := s.tcpLn.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveTCP(c)
		}()
	}
}

func (s *Sim) serveTCP(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			c.Close()
			cancel()
		case <-ctx.Done():
		}
	}()
	if !s.session.TryLock() {
		c.Write([]byte("BUSY"))
		return
	}
	unlock := sync.OnceFunc(s.session.Unlock)
	defer unlock()

	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\r')
	if err != nil {
		return
	}
	fault, slow := s.state()
	// ESC password ESC action CR
	if len(line) < 4 || line[0] != 0x1b || line[len(line)-3] != 0x1b {
		return
	}
	pass, act := line[1:len(line)-3], line[len(line)-2]
	// A client that hangs up ends the session, as on the device.
	c.SetReadDeadline(time.Time{})
	go func() {
		buf := make([]byte, 1)
		c.Read(buf)
		cancel()
	}()
	switch fault {
	case FaultNoAnswer:
		<-ctx.Done()
		return
	case FaultSlow:
		if !s.wait(ctx, slow) {
			return
		}
	case FaultBusy:
		c.Write([]byte("BUSY"))
		return
	case FaultUnauthorized:
		return
	case FaultGarbage:
		c.Write([]byte("?SYNTAX"))
		return
	}
	if pass != s.opts.Password {
		return // hang up without a word
	}
	reply, ok := s.do(act, fault == FaultStuck)
	if !ok {
		return
	}
	// Free the session before closing, so that the client's next
	// connection, made as soon as it sees EOF, is not BUSY.
	unlock()
	c.Write([]byte(reply))
}

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	fault, slow := s.state()
	switch fault {
	case FaultNoAnswer:
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	case FaultSlow:
		if !s.wait(r.Context(), slow) {
			return
		}
	case FaultBusy:
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	case FaultUnauthorized:
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	case FaultGarbage:
		fmt.Fprint(w, "<html><body>Welcome</body></html>")
		return
	}
	q := r.URL.Query()
	if q.Get("u") != s.opts.User || q.Get("p") != s.opts.Password {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var act byte
	switch q.Get("s") {
	case "0":
		act = 'f'
	case "1":
		act = 'n'
	case "2":
		act = 'q'
	default:
		http.Error(w, "bad s", http.StatusBadRequest)
		return
	}
	reply, _ := s.do(act, fault == FaultStuck)
	fmt.Fprintf(w, "<html><head><title>iBoot</title></head><body><status>%s</status></body></html>\n", reply)
}
