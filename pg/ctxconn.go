package pg

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/lib/pq"
)

// newConnector is pq.NewConnector whose connections end with ctx: once
// ctx is done, the socket of every connection dialed before is closed, so
// a query blocked on a server that vanished mid-reply (its node crashed,
// its link cut: no FIN, no RST ever comes) fails at once. lib/pq alone
// only sends a cancel request to that same dead server and keeps reading,
// until TCP gives up a quarter of an hour later; the agent's monitor would
// be stuck that long. Connections dialed after ctx is done are left alone:
// they are lib/pq's cancel requests, which a live server still needs to
// stop the query.
func newConnector(ctx context.Context, conninfo string) (*pq.Connector, error) {
	c, err := pq.NewConnector(conninfo)
	if err != nil {
		return nil, err
	}
	c.Dialer(&ctxDialer{ctx: ctx})
	return c, nil
}

// ctxDialer dials for newConnector.
type ctxDialer struct {
	ctx context.Context
	d   net.Dialer
}

func (d *ctxDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *ctxDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *ctxDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	tie := d.ctx.Err() == nil // before dialing: see newConnector
	c, err := d.d.DialContext(ctx, network, address)
	if err != nil || !tie {
		return c, err
	}
	return &ctxConn{Conn: c, ctx: d.ctx, stop: context.AfterFunc(d.ctx, func() { c.Close() })}, nil
}

// ctxConn is a connection closed when its dialer's context ends; its
// errors then say so first.
type ctxConn struct {
	net.Conn
	ctx  context.Context
	stop func() bool
}

func (c *ctxConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	return n, c.why(err)
}

func (c *ctxConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	return n, c.why(err)
}

func (c *ctxConn) why(err error) error {
	if err != nil && c.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", c.ctx.Err(), err)
	}
	return err
}

func (c *ctxConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
