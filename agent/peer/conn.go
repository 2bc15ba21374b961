package peer

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// chanConn presents an SSH channel as a net.Conn with working deadlines.
// Several channels share one TCP connection, so a deadline cannot be
// pushed down to a socket. A read deadline is kept by a reader goroutine
// that a Read waits on, so an expired read leaves the channel usable. A
// write deadline closes the channel when it passes during a blocked
// write: the SSH window is shared state that a half-done write leaves
// unknown, and every user here (raft, the protocol client) drops a
// connection after a write error anyway.
type chanConn struct {
	ch            ssh.Channel
	local, remote net.Addr

	startRead sync.Once
	chunks    chan chunk
	rest      []byte // unread part of the last chunk
	rerr      error  // the channel's read error, once seen

	mu     sync.Mutex
	rdl    time.Time
	wdl    time.Time
	closed chan struct{}
	once   sync.Once
}

// closeWait bounds how long Close waits for the channel's close message.
const closeWait = time.Second

type chunk struct {
	b   []byte
	err error
}

func newChanConn(ch ssh.Channel, local, remote net.Addr) *chanConn {
	return &chanConn{ch: ch, local: local, remote: remote, chunks: make(chan chunk), closed: make(chan struct{})}
}

func (c *chanConn) reader() {
	for {
		b := make([]byte, 32<<10)
		n, err := c.ch.Read(b)
		select {
		case c.chunks <- chunk{b[:n], err}:
		case <-c.closed:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read implements net.Conn.
func (c *chanConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	c.startRead.Do(func() { go c.reader() })
	c.mu.Lock()
	dl := c.rdl
	c.mu.Unlock()
	var expired <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case ck := <-c.chunks:
		n := copy(p, ck.b)
		c.rest = ck.b[n:]
		if ck.err != nil {
			c.rerr = ck.err
			if n == 0 {
				return 0, ck.err
			}
		}
		return n, nil
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

// Write implements net.Conn.
func (c *chanConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	dl := c.wdl
	c.mu.Unlock()
	if dl.IsZero() {
		return c.ch.Write(p)
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0, os.ErrDeadlineExceeded
	}
	var fired bool
	var fmu sync.Mutex
	t := time.AfterFunc(d, func() {
		fmu.Lock()
		fired = true
		fmu.Unlock()
		c.Close()
	})
	n, err := c.ch.Write(p)
	t.Stop()
	fmu.Lock()
	defer fmu.Unlock()
	if fired && err != nil {
		return n, os.ErrDeadlineExceeded
	}
	return n, err
}

// Close implements net.Conn.
func (c *chanConn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		// Closing sends a message, which waits for a write stuck on a
		// dead connection; the close must not. The stuck write ends when
		// the pooled connection is closed or times out.
		done := make(chan error, 1)
		go func() { done <- c.ch.Close() }()
		select {
		case err = <-done:
		case <-time.After(closeWait):
		}
	})
	return err
}

// CloseWrite half-closes the channel (sends EOF), as io.Copy users expect.
func (c *chanConn) CloseWrite() error { return c.ch.CloseWrite() }

func (c *chanConn) LocalAddr() net.Addr  { return c.local }
func (c *chanConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline implements net.Conn.
func (c *chanConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.Unlock()
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *chanConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *chanConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	return nil
}

var _ io.ReadWriteCloser = (*chanConn)(nil)
