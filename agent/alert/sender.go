package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultRetry          = 15 * time.Second
	DefaultMaxAttempts    = 30
	DefaultFlushTimeout   = 5 * time.Second
	DefaultWebhookTimeout = 10 * time.Second
	DefaultMailTimeout    = 30 * time.Second

	// maxBackoff caps the doubling wait between attempts: an alert should
	// go out within minutes of its target coming back.
	maxBackoff = 5 * time.Minute
)

// Sender queues alerts and delivers them to every target. It is safe for
// concurrent use.
type Sender struct {
	cfg     Config
	log     *slog.Logger
	targets []*target

	// mu serialises Send, so that sequence numbers, files and queues
	// agree on the order.
	mu     sync.Mutex
	seq    uint64
	closed bool

	stopping  chan struct{} // closed when Close starts
	ctx       context.Context
	cancel    context.CancelFunc // at the end of the flush
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// TargetStatus is what one target has been doing since the sender started.
type TargetStatus struct {
	// Target names it: "webhook:<name>" or "mail".
	Target string
	// Address is where it sends: the URL without credentials and query,
	// or the SMTP server's host:port.
	Address string
	// Queued is the number of alerts waiting for it, including one being
	// delivered.
	Queued int
	// Delivered and Dropped count alerts since the start.
	Delivered, Dropped int
	// LastSuccess is the time of the last delivery; zero if none.
	LastSuccess time.Time
	// LastError is the last failure, "" if none; LastErrorTime its time.
	LastError     string
	LastErrorTime time.Time
}

// deliverer sends one alert to one target.
type deliverer interface {
	deliver(ctx context.Context, a Alert) error
	close()
}

// partialError is a delivery that reached some but not all recipients:
// delivered (a retry would repeat it to the others), but worth an error.
type partialError struct{ err error }

func (e *partialError) Error() string { return e.err.Error() }
func (e *partialError) Unwrap() error { return e.err }

// target is one destination with its ordered queue and worker.
type target struct {
	id      string // "webhook:<name>" or "mail": the name in queue files
	address string
	d       deliverer
	wake    chan struct{} // one slot: Send never waits for the worker

	mu            sync.Mutex
	queue         []*entry
	delivered     int
	dropped       int
	lastSuccess   time.Time
	lastError     string
	lastErrorTime time.Time
}

// New starts a sender with cfg's targets and re-queues the alerts an
// earlier run left in cfg.QueueDir. With no target it only logs alerts.
func New(cfg Config, logger *slog.Logger) (*Sender, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Retry == 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	if cfg.Retry < 0 || cfg.MaxAttempts < 0 || cfg.FlushTimeout < 0 {
		return nil, errors.New("starting alert sender: retry, max attempts and flush timeout must not be negative")
	}
	s := &Sender{cfg: cfg, log: logger.With("component", "alert"), stopping: make(chan struct{})}
	seen := map[string]bool{}
	add := func(t *target) error {
		if seen[t.id] {
			return fmt.Errorf("starting alert sender: two targets are called %q; give each webhook its own name", t.id)
		}
		seen[t.id] = true
		t.wake = make(chan struct{}, 1)
		s.targets = append(s.targets, t)
		return nil
	}
	for i, w := range cfg.Webhooks {
		h, err := newWebhook(w)
		if err != nil {
			return nil, fmt.Errorf("starting alert sender: webhook %d: %w", i, err)
		}
		if err := add(&target{id: "webhook:" + h.name, address: h.redacted, d: h}); err != nil {
			return nil, err
		}
	}
	if cfg.Mail != nil {
		m, err := newMailer(*cfg.Mail)
		if err != nil {
			return nil, fmt.Errorf("starting alert sender: mail: %w", err)
		}
		if err := add(&target{id: "mail", address: m.cfg.Addr, d: m}); err != nil {
			return nil, err
		}
	}
	if len(s.targets) > 0 {
		if cfg.QueueDir == "" {
			return nil, errors.New("starting alert sender: no queue directory: undelivered alerts would not survive a restart")
		}
		if err := os.MkdirAll(cfg.QueueDir, 0o700); err != nil {
			return nil, fmt.Errorf("starting alert sender: creating queue directory: %w", err)
		}
		last, err := s.load()
		if err != nil {
			return nil, fmt.Errorf("starting alert sender: %w", err)
		}
		// Sequence numbers start at the clock so that they stay unique
		// (they are in the alert ids) when the queue directory is empty,
		// and after the last queued file so that order holds when it is not.
		s.seq = max(last, uint64(time.Now().UnixNano()))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, t := range s.targets {
		s.wg.Add(1)
		go s.run(t)
	}
	return s, nil
}

// Send queues a for every target and returns; it never waits for a
// delivery. The alert is on disk when Send returns (unless the disk fails,
// which is logged). Empty Time, Deployment, Node and Severity are filled
// in. After Close the alert is only written to the queue, for the next
// start.
func (s *Sender) Send(a Alert) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	if a.Deployment == "" {
		a.Deployment = s.cfg.Deployment
	}
	if a.Node == "" {
		a.Node = s.cfg.Node
	}
	if a.Severity == "" {
		a.Severity = Info
	}
	if a.Kind == "" {
		a.Kind = "alert"
	}
	if strings.HasPrefix(a.Kind, "geo-") && a.Site == "" {
		s.log.Warn("geo alert without a site: the operators cannot tell which site it is about", "kind", a.Kind, "subject", a.Subject)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	if a.ID == "" {
		node := a.Node
		if node == "" {
			node = "ha-agent"
		}
		a.ID = fmt.Sprintf("%d.%s", s.seq, node)
	}
	// The log line is the alert's record even when no target is set or
	// every delivery fails.
	s.log.Info("alert", "alert", a.ID, "kind", a.Kind, "severity", a.Severity, "site", a.Site,
		"by", a.By, "subject", a.Subject)
	if len(s.targets) == 0 {
		return
	}
	e := &entry{seq: s.seq, alert: a, left: len(s.targets)}
	if err := s.persist(e); err != nil {
		s.log.Error("alert kept in memory only: a restart before delivery loses it",
			"alert", a.ID, "kind", a.Kind, "err", err)
	}
	if s.closed {
		if e.file != "" {
			s.log.Info("alert sender closed: alert queued on disk for the next start", "alert", a.ID)
		} else {
			s.log.Error("alert sender closed and alert not on disk: it is lost", "alert", a.ID, "kind", a.Kind, "subject", a.Subject)
		}
		return
	}
	for _, t := range s.targets {
		t.mu.Lock()
		t.queue = append(t.queue, e)
		t.mu.Unlock()
		select {
		case t.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// Status returns each target's state, in configuration order (webhooks,
// then mail).
func (s *Sender) Status() []TargetStatus {
	out := make([]TargetStatus, 0, len(s.targets))
	for _, t := range s.targets {
		t.mu.Lock()
		out = append(out, TargetStatus{
			Target: t.id, Address: t.address, Queued: len(t.queue),
			Delivered: t.delivered, Dropped: t.dropped, LastSuccess: t.lastSuccess,
			LastError: t.lastError, LastErrorTime: t.lastErrorTime,
		})
		t.mu.Unlock()
	}
	return out
}

// Close stops the sender. Workers go on delivering what is queued for up
// to FlushTimeout, without waiting out a retry; what is left stays in the
// queue directory for the next New. Close returns an error only when
// alerts that could not be written to disk were not delivered: those are
// lost.
func (s *Sender) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stopping)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		timer := time.NewTimer(s.cfg.FlushTimeout)
		select {
		case <-done:
			timer.Stop()
		case <-timer.C:
			// Cut off deliveries in flight; the deliverers honour the
			// context, so the workers return at once.
			s.cancel()
			<-done
		}
		s.cancel()
		left, lost := map[*entry]bool{}, 0
		for _, t := range s.targets {
			t.d.close()
			t.mu.Lock()
			for _, e := range t.queue {
				if !left[e] {
					left[e] = true
					e.mu.Lock()
					if e.file == "" {
						lost++
					}
					e.mu.Unlock()
				}
			}
			t.mu.Unlock()
		}
		if len(left) > 0 {
			s.log.Warn("alert sender closed with alerts undelivered; they stay queued for the next start",
				"count", len(left)-lost, "dir", s.cfg.QueueDir)
		}
		if lost > 0 {
			s.closeErr = fmt.Errorf("closing alert sender: %d undelivered alerts could not be written to disk and are lost", lost)
		}
	})
	return s.closeErr
}

// run is the worker of target t: it delivers t's queue in order until the
// sender stops.
func (s *Sender) run(t *target) {
	defer s.wg.Done()
	for {
		t.mu.Lock()
		var e *entry
		if len(t.queue) > 0 {
			e = t.queue[0]
		}
		t.mu.Unlock()
		if e == nil {
			select {
			case <-t.wake:
				continue
			case <-s.stopping:
				return
			}
		}
		if !s.deliver(t, e) {
			return // stopping: e stays queued, on disk
		}
		t.mu.Lock()
		t.queue[0] = nil
		t.queue = t.queue[1:]
		t.mu.Unlock()
		s.finish(t, e)
	}
}

// deliver tries e on t until it is delivered or given up (true), or the
// sender stops (false).
func (s *Sender) deliver(t *target, e *entry) bool {
	a := e.alert
	for attempt := 1; ; attempt++ {
		err := t.d.deliver(s.ctx, a)
		var partial *partialError
		if err == nil || errors.As(err, &partial) {
			now := time.Now()
			t.mu.Lock()
			t.delivered++
			t.lastSuccess = now
			if partial != nil {
				t.lastError, t.lastErrorTime = err.Error(), now
			}
			t.mu.Unlock()
			if partial != nil {
				s.log.Error("alert delivered, but not to everyone", "target", t.id, "alert", a.ID,
					"kind", a.Kind, "site", a.Site, "subject", a.Subject, "err", err)
			} else {
				s.log.Info("alert delivered", "target", t.id, "alert", a.ID, "attempt", attempt)
			}
			return true
		}
		if s.ctx.Err() != nil {
			s.log.Info("alert delivery cut off by shutdown; it stays queued", "target", t.id, "alert", a.ID)
			return false
		}
		t.mu.Lock()
		t.lastError, t.lastErrorTime = err.Error(), time.Now()
		t.mu.Unlock()
		if attempt >= s.cfg.MaxAttempts {
			t.mu.Lock()
			t.dropped++
			t.mu.Unlock()
			s.log.Error("alert dropped: every delivery attempt failed", "target", t.id, "address", t.address,
				"alert", a.ID, "kind", a.Kind, "site", a.Site, "subject", a.Subject, "attempts", attempt, "err", err)
			return true
		}
		wait := s.backoff(attempt)
		s.log.Error("alert delivery failed; retrying", "target", t.id, "address", t.address,
			"alert", a.ID, "kind", a.Kind, "site", a.Site, "subject", a.Subject,
			"attempt", attempt, "max_attempts", s.cfg.MaxAttempts, "retry_in", wait, "err", err)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-s.stopping:
			// Waiting out a retry would only delay the shutdown.
			timer.Stop()
			return false
		}
	}
}

// backoff is the wait after the attempt-th failure: Retry, doubling,
// capped at maxBackoff (or Retry, when that is longer).
func (s *Sender) backoff(attempt int) time.Duration {
	limit := max(maxBackoff, s.cfg.Retry)
	d := s.cfg.Retry
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
