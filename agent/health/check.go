// Package health runs the checks that say whether a node's services
// answer — process, TCP, SIP OPTIONS, HTTP, SQL, exec — and turns their
// failures into decisions by fault class (seed 004): a minor fault is
// logged and the node carries on; a major fault restarts the resource, at
// most a few times in a window, then escalates; a fatal fault fails over,
// fences or reboots, as configured.
//
// A [Check] is built from a [Spec] by [New], which rejects a spec that
// cannot work (a timeout not shorter than the interval, zero rise or fall,
// an unknown kind or parameter) with an error naming the check. A
// [Monitor] runs a set of checks on their intervals with rise/fall
// hysteresis and sends [Event]s on a channel: a result whenever a check's
// state or failure count changes, and a [Decision] from the [Policy] when
// failures call for one.
package health

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Class is a check's fault class: what its failure means.
type Class string

// Fault classes.
const (
	// Minor: log and carry on.
	Minor Class = "minor"
	// Major: restart the check's resource, within a limit, then escalate.
	Major Class = "major"
	// Fatal: fail over, fence or reboot at once.
	Fatal Class = "fatal"
)

// Action is what a decision asks the agent to do.
type Action string

// Actions.
const (
	// ActionLog: record the failure; nothing else.
	ActionLog Action = "log"
	// ActionRestart: restart the resource (resource.Group.Recover).
	ActionRestart Action = "restart"
	// ActionFailover: move the group to the peer.
	ActionFailover Action = "failover"
	// ActionFence: fence this node (power it off through the fencing
	// device) so that the peer may take over safely.
	ActionFence Action = "fence"
	// ActionReboot: reboot this node.
	ActionReboot Action = "reboot"
)

// Defaults of a check, chosen for a PBX: a probe every 10 s, a hung one
// given up after 5 s, three failures (30 s) before acting, two successes
// before trusting a recovered service again.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 5 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// Spec is the configuration of one check.
type Spec struct {
	Name string
	// Kind is one of Kinds().
	Kind string
	// Resource is the resource the check guards: the one restarted when a
	// major check fails. Required for major checks.
	Resource string
	Class    Class
	// OnFatal is what a fatal check's failure, or a major check's failure
	// past its restart limit, asks for: ActionFailover (default),
	// ActionFence or ActionReboot.
	OnFatal Action
	// Interval between probes; Timeout bounds one probe and must be
	// shorter than Interval.
	Interval time.Duration
	Timeout  time.Duration
	// Rise is how many consecutive successes make the check up; Fall how
	// many consecutive failures make it down.
	Rise int
	Fall int
	// Params are the kind's parameters.
	Params map[string]string
}

// DefaultSpec returns a spec with every default filled in. Decode
// configuration over it, so that a key the operator left out keeps its
// default and one set to zero is caught by New.
func DefaultSpec() Spec {
	return Spec{
		Class:    Minor,
		OnFatal:  ActionFailover,
		Interval: DefaultInterval,
		Timeout:  DefaultTimeout,
		Rise:     DefaultRise,
		Fall:     DefaultFall,
	}
}

// ConfigError is a check that cannot work, naming the check and the key.
type ConfigError struct {
	Check   string
	Key     string
	Problem string
	Want    string
	Err     error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "check %q", e.Check)
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Problem)
	if e.Want != "" {
		fmt.Fprintf(&b, "; want %s", e.Want)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// prober is what each kind implements: one probe, returning a short
// description of what it saw (for the console) and an error when the
// service is not healthy.
type prober interface {
	probe(ctx context.Context) (string, error)
}

type kindInfo struct {
	keys []string
	new  func(name string, params map[string]string) (prober, error)
}

var kinds = map[string]kindInfo{
	"process": {keys: []string{"name", "pidfile"}, new: newProcess},
	"tcp":     {keys: []string{"address"}, new: newTCP},
	"sip":     {keys: []string{"address", "accept", "uri", "from"}, new: newSIP},
	"http":    {keys: []string{"url", "expect", "contains", "tls_skip_verify"}, new: newHTTP},
	"sql":     {keys: []string{"dsn", "query", "expect"}, new: newSQL},
	"exec":    {keys: []string{"path", "args"}, new: newExec},
}

// Kinds lists the check kinds New knows.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Check is one configured health check.
type Check struct {
	spec Spec
	p    prober
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// New validates spec and builds the check. Errors are *ConfigError.
func New(spec Spec) (*Check, error) {
	bad := func(key, problem, want string) error {
		return &ConfigError{Check: spec.Name, Key: key, Problem: problem, Want: want}
	}
	if !nameRE.MatchString(spec.Name) {
		return nil, bad("name", fmt.Sprintf("%q is not a valid check name", spec.Name),
			"1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	info, ok := kinds[spec.Kind]
	if !ok {
		return nil, bad("kind", fmt.Sprintf("unknown kind %q", spec.Kind), "one of "+strings.Join(Kinds(), ", "))
	}
	switch spec.Class {
	case Minor, Fatal:
	case Major:
		if spec.Resource == "" {
			return nil, bad("resource", "missing: a major check restarts its resource when it fails",
				"the name of the resource this check guards, or class = \"minor\"")
		}
	default:
		return nil, bad("class", fmt.Sprintf("unknown class %q", spec.Class), "minor (log), major (restart) or fatal (failover, fence, reboot)")
	}
	switch spec.OnFatal {
	case ActionFailover, ActionFence, ActionReboot:
	case "":
		spec.OnFatal = ActionFailover
	default:
		return nil, bad("on_fatal", fmt.Sprintf("unknown action %q", spec.OnFatal), "failover, fence or reboot")
	}
	switch {
	case spec.Interval <= 0:
		return nil, bad("interval", fmt.Sprintf("%s is not a positive duration", spec.Interval), "a duration such as \"10s\"")
	case spec.Timeout <= 0:
		return nil, bad("timeout", fmt.Sprintf("%s is not a positive duration", spec.Timeout), "a duration such as \"5s\"")
	case spec.Timeout >= spec.Interval:
		return nil, bad("timeout", fmt.Sprintf("timeout %s is not shorter than interval %s: probes would overlap", spec.Timeout, spec.Interval),
			"a timeout shorter than the interval (raise interval or lower timeout)")
	case spec.Rise < 1:
		return nil, bad("rise", fmt.Sprintf("%d: at least one success must make the check up", spec.Rise),
			fmt.Sprintf("a count of consecutive successes, such as %d", DefaultRise))
	case spec.Fall < 1:
		return nil, bad("fall", fmt.Sprintf("%d: at least one failure must make the check down", spec.Fall),
			fmt.Sprintf("a count of consecutive failures, such as %d", DefaultFall))
	}
	for k := range spec.Params {
		if !slices.Contains(info.keys, k) {
			return nil, bad(k, fmt.Sprintf("unknown parameter for a %s check", spec.Kind), "one of "+strings.Join(info.keys, ", "))
		}
	}
	spec.Params = maps.Clone(spec.Params)
	p, err := info.new(spec.Name, spec.Params)
	if err != nil {
		return nil, err
	}
	return &Check{spec: spec, p: p}, nil
}

// Name is the check's name.
func (c *Check) Name() string { return c.spec.Name }

// Spec returns the check's configuration.
func (c *Check) Spec() Spec {
	s := c.spec
	s.Params = maps.Clone(s.Params)
	return s
}

// ErrTimeout is wrapped by a probe's error when it did not finish within
// the check's timeout.
var ErrTimeout = errors.New("timed out")

// Probe runs the check once, bounded by its timeout. It returns what it
// saw and, when the service is not healthy, why.
func (c *Check) Probe(ctx context.Context) (string, error) {
	pctx, cancel := context.WithTimeout(ctx, c.spec.Timeout)
	defer cancel()
	out, err := c.p.probe(pctx)
	if err != nil && pctx.Err() != nil && ctx.Err() == nil && !errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w after %s: %w", ErrTimeout, c.spec.Timeout, err)
	}
	return out, err
}

// Close releases what the check holds (the SQL check's pool).
func (c *Check) Close() error {
	if cl, ok := c.p.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}

// paramError is a *ConfigError for a kind's parameter.
func paramError(check, key, problem, want string) error {
	return &ConfigError{Check: check, Key: key, Problem: problem, Want: want}
}
