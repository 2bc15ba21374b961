// Package devctx bounds device calls: each call gets the caller's context,
// a per-call timeout and the device's own lifetime, so that closing a device
// ends every call in flight and a call never outlives its deadline.
package devctx

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/hatui/hatui/switchdrv"
)

// Lifetime is cancelled when its device is closed.
type Lifetime struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a live Lifetime.
func New() *Lifetime {
	ctx, cancel := context.WithCancel(context.Background())
	return &Lifetime{ctx: ctx, cancel: cancel}
}

// Close ends the lifetime; calls bound to it see their context cancelled.
func (l *Lifetime) Close() { l.cancel() }

// Closed reports whether Close was called.
func (l *Lifetime) Closed() bool { return l.ctx.Err() != nil }

// Done is closed when the lifetime ends.
func (l *Lifetime) Done() <-chan struct{} { return l.ctx.Done() }

// Bound returns a context that ends at the caller's deadline, after timeout,
// or when the device is closed, whichever comes first.
func (l *Lifetime) Bound(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(l.ctx, cancel)
	return c, func() { stop(); cancel() }
}

// Classify wraps a transport error into a switchdrv error: ErrClosed when
// the device was closed, ErrUnreachable for timeouts, refused or failed
// connections and cancellations, and ErrBadReply for anything else that
// happened after the device answered (the caller decides that by passing
// kind for errors it cannot place).
func (l *Lifetime) Classify(err error, device, op string, kind error) *switchdrv.Error {
	var se *switchdrv.Error
	if errors.As(err, &se) {
		return se
	}
	if l.Closed() {
		return switchdrv.NewError(switchdrv.ErrClosed, device, op, err)
	}
	if IsTransport(err) {
		return switchdrv.NewError(switchdrv.ErrUnreachable, device, op, err)
	}
	return switchdrv.NewError(kind, device, op, err)
}

// IsTransport reports whether err is a timeout, cancellation or network
// failure, as opposed to a reply the device sent.
func IsTransport(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
