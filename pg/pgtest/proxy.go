package pgtest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on loopback whose downstream direction (server to
// client: the WAL a master sends its standby) is limited to a rate, for a
// slow link between two nodes. It stands in for a WAN link in userspace,
// since the machine has no netem.
type Proxy struct {
	Port int

	ln     net.Listener
	target string

	mu    sync.Mutex
	rate  int64     // bytes per second; 0: unlimited
	next  time.Time // when the link is free again
	conns map[net.Conn]bool
	bytes int64 // sent downstream so far
}

// NewProxy forwards connections on a new loopback port to target
// ("127.0.0.1:5432"), sending at most rate bytes per second to the
// clients (all connections share the link); 0 means unlimited. It closes
// when the test ends.
func NewProxy(t testing.TB, target string, rate int64) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, target: target, rate: rate, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// SetRate changes the link's rate; 0 means unlimited.
func (p *Proxy) SetRate(rate int64) {
	p.mu.Lock()
	p.rate = rate
	p.mu.Unlock()
}

// Sent is how many bytes went downstream so far.
func (p *Proxy) Sent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// Close stops listening and cuts every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *Proxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	defer func() {
		client.Close()
		server.Close()
		p.track(client, false)
		p.track(server, false)
	}()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(server, client)
		done <- struct{}{}
	}()
	go func() {
		buf := make([]byte, 8<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				time.Sleep(p.reserve(n))
				if _, werr := client.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
}

// reserve books n bytes on the shared link and says how long to wait
// before sending them.
func (p *Proxy) reserve(n int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += int64(n)
	if p.rate <= 0 {
		return 0
	}
	now := time.Now()
	start := p.next
	if start.Before(now) {
		start = now
	}
	p.next = start.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
	return start.Sub(now)
}
