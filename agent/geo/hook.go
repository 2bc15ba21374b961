package geo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hatui/hatui/protocol"
)

// TicketInfo describes the ticket a site is about to take, for the
// before-acquire checks.
type TicketInfo struct {
	Ticket      string
	Site        string // the site about to take the ticket
	Node        string // the agent asking
	Holder      string // the holder whose lease ran out
	Term        uint64 // the term being replaced
	LeaseExpiry time.Time
}

// HookEnv returns the environment the before-acquire handler runs with,
// added to the agent's own. booth's names are set too, so an existing
// booth handler script runs unchanged.
func HookEnv(t TicketInfo) []string {
	return []string{
		"HATUI_GEO_TICKET=" + t.Ticket,
		"HATUI_GEO_SITE=" + t.Site,
		"HATUI_GEO_NODE=" + t.Node,
		"HATUI_GEO_HOLDER=" + t.Holder,
		"HATUI_GEO_TERM=" + strconv.FormatUint(t.Term, 10),
		"HATUI_GEO_LEASE_EXPIRY=" + t.LeaseExpiry.UTC().Format(time.RFC3339Nano),
		"BOOTH_TICKET=" + t.Ticket,
		"BOOTH_LOCAL=" + t.Site,
	}
}

const hookHint = "fix what the before-acquire handler checks, or change before_acquire in the geo config"

// runHook runs the before-acquire handler argv. A non-zero exit, a
// failure to start, or running past timeout vetoes, with the reason and
// the start of the handler's output.
func runHook(ctx context.Context, argv []string, timeout time.Duration, t TicketInfo) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), HookEnv(t)...)
	out := &capped{max: 2048}
	cmd.Stdout, cmd.Stderr = out, out
	// A handler's children may keep its output open; do not wait on them.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	detail := strings.TrimSpace(out.String())
	if detail != "" {
		detail = ": " + detail
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return protocol.Errorf(protocol.CodeRefused, hookHint, "before-acquire handler %s did not finish within %s%s", argv[0], timeout, detail)
	}
	return protocol.Errorf(protocol.CodeRefused, hookHint, "before-acquire handler %s vetoed taking ticket %s for site %s (%v)%s", argv[0], t.Ticket, t.Site, err, detail)
}

// capped keeps the first max bytes written to it.
type capped struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// Write implements io.Writer, dropping what is past the cap.
func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// String returns what was kept.
func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}

// beforeAcquire runs the configured checks; an error vetoes.
func (m *Manager) beforeAcquire(ctx context.Context, t TicketInfo) error {
	if len(m.cfg.BeforeAcquire) > 0 {
		if err := runHook(ctx, m.cfg.BeforeAcquire, m.cfg.BeforeAcquireTimeout, t); err != nil {
			return err
		}
	}
	if m.deps.CanAcquire != nil {
		if err := m.deps.CanAcquire(ctx, t); err != nil {
			return fmt.Errorf("the agent's before-acquire check vetoed taking ticket %s for site %s: %w", t.Ticket, t.Site, err)
		}
	}
	return nil
}
