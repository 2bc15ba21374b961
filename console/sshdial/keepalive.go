package sshdial

import (
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// keepalive sends a keepalive@openssh.com request every interval, as ssh's
// ServerAliveInterval does, and closes c when countMax intervals in a row
// pass with a request unanswered. Any reply counts, including the failure
// OpenSSH sends for this request name. It returns when c closes.
//
// Without it, a node that hangs or a link that drops packets leaves the
// console waiting on TCP retransmission for many minutes; with it the
// console notices in about interval*(countMax+1) and can move to another
// node.
func keepalive(c *ssh.Client, interval time.Duration, countMax int, dead func(error)) {
	if interval <= 0 {
		return
	}
	closed := make(chan struct{})
	go func() { c.Wait(); close(closed) }()
	replies := make(chan struct{})
	t := time.NewTicker(interval)
	defer t.Stop()
	inflight, misses := false, 0
	for {
		select {
		case <-closed:
			return
		case <-replies:
			inflight, misses = false, 0
		case <-t.C:
			if inflight {
				misses++
				if misses >= countMax {
					dead(fmt.Errorf("no answer to %d keepalives sent %v apart", misses, interval))
					c.Close()
					return
				}
				continue
			}
			inflight = true
			go func() {
				// x/crypto serialises global requests, so at most one is
				// outstanding; it returns an error once c is closed.
				if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
					return
				}
				select {
				case replies <- struct{}{}:
				case <-closed:
				}
			}()
		}
	}
}
