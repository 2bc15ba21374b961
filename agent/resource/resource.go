// Package resource starts, stops and monitors the parts of a service group:
// a virtual IP with gratuitous ARP, a systemd unit, a runit service, an OCF
// resource agent, or an operator's script. A [Group] starts its resources
// in order and stops them in reverse, rolls a failed start back, and keeps
// fail counts against a migration threshold with the semantics Pacemaker
// users know (cleanup resets them).
//
// Resources are built from a [Spec] by [New], which checks everything that
// can be checked before the agent runs anything (type, binaries, parameter
// forms) so that a node with a wrong configuration refuses to start with an
// error naming the resource, the key and the form wanted, rather than
// failing over at three in the morning. Every operation is bounded by the
// spec's timeouts; a program still running at its deadline is killed with
// its whole process group.
package resource

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

	"github.com/hatui/hatui/agent/resource/command"
)

// Default operation timeouts of a resource whose type has none of its own
// (see DefaultTimeouts): Pacemaker's defaults for start and stop, and a
// monitor short enough to notice a hung service quickly.
const (
	DefaultStartTimeout   = 20 * time.Second
	DefaultStopTimeout    = 20 * time.Second
	DefaultMonitorTimeout = 10 * time.Second
)

// Timeouts are the operation timeouts of a resource.
type Timeouts struct {
	Start, Stop, Monitor time.Duration
}

// DefaultTimeouts returns the default timeouts of resource type typ.
//
// The stop timeouts matter most: their sum is the group's stop budget, and
// a standby that takes over without fencing waits the stop budget plus the
// dead time and a keepalive (agent/failover.Timing), so Pacemaker's 20 s
// for every resource made even a lone virtual IP wait 21 s. Each type's
// stop timeout is what that kind of stop takes with room to spare:
//
//   - vip: removing an address is one netlink call, a millisecond; 1 s
//     covers a loaded machine.
//   - systemd, runit, exec: a PBX told to stop (asterisk's "core stop
//     now", FreeSWITCH's shutdown, kamailio) is gone within a second or
//     two; 5 s. A service that needs longer sets stop_timeout, and
//     ha-agent check-config prints the takeover delay that follows.
//   - ocf: resource agents declare their own timeouts in their meta-data
//     and are often slow (databases, file systems): Pacemaker's 20 s.
func DefaultTimeouts(typ string) Timeouts {
	if info, ok := types[typ]; ok {
		return info.timeouts
	}
	return Timeouts{Start: DefaultStartTimeout, Stop: DefaultStopTimeout, Monitor: DefaultMonitorTimeout}
}

// State is what a monitor operation found.
type State string

// States a monitor reports.
const (
	// StateRunning: the resource is active on this node.
	StateRunning State = "running"
	// StateStopped: cleanly not active (never started, or stopped).
	StateStopped State = "stopped"
	// StateFailed: neither cleanly running nor cleanly stopped, or the
	// monitor itself could not tell (timed out, tool missing).
	StateFailed State = "failed"
)

// Status is the result of a monitor operation.
type Status struct {
	State State
	// Detail says why, in one line: "(pid 812) 3600s", "OCF_ERR_GENERIC
	// (1): asterisk not responding", "monitor timed out after 10s".
	Detail string
}

func (s Status) String() string {
	if s.Detail == "" {
		return string(s.State)
	}
	return string(s.State) + ": " + s.Detail
}

// Resource is one manageable part of a service group. Start and Stop are
// idempotent: starting a running resource or stopping a stopped one
// succeeds, because after an agent restart the real state is not known.
type Resource interface {
	// Name is unique within the node's configuration.
	Name() string
	// Type is the resource type: "vip", "systemd", "runit", "ocf", "exec".
	Type() string
	// Start makes the resource active and returns when it is, or with an
	// error saying why it is not.
	Start(ctx context.Context) error
	// Stop makes the resource inactive. An error means it may still be
	// active: the caller must treat the node as unclean (fence it).
	Stop(ctx context.Context) error
	// Monitor reports whether the resource is active.
	Monitor(ctx context.Context) Status
}

// Spec is the configuration of one resource.
type Spec struct {
	Name string
	// Type is one of Types().
	Type string
	// Params are the type's parameters; see each type's documentation in
	// Types and in recipes/. Unknown keys are errors so that a misspelt key
	// is not silently ignored.
	Params map[string]string
	// Timeouts of the operations; zero means the default.
	StartTimeout   time.Duration
	StopTimeout    time.Duration
	MonitorTimeout time.Duration
	// Warm marks a resource that runs on every node that may hold its
	// group, not only on the holder: a PBX listening on the virtual IP
	// before the address is there (net.ipv4.ip_nonlocal_bind), so that
	// a takeover or a switchover moves only the address and the other
	// cold resources. See Group.StartWarm. A virtual IP is never warm.
	Warm bool
}

// ErrTimeout is wrapped by an operation's error when its timeout passed.
var ErrTimeout = errors.New("timed out")

// ConfigError is a resource configuration that cannot work. It names the
// resource and, when one key is at fault, the key, and says what form was
// expected.
type ConfigError struct {
	Resource string
	// Key is the parameter at fault ("" when the resource as a whole is,
	// as for an unknown type). Spec fields are named "type",
	// "start_timeout" and so on.
	Key string
	// Problem says what is wrong.
	Problem string
	// Want says what would be right.
	Want string
	// Err is the underlying error, if any.
	Err error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "resource %q", e.Resource)
	if e.Key != "" {
		fmt.Fprintf(&b, ": parameter %q", e.Key)
	}
	fmt.Fprintf(&b, ": %s", e.Problem)
	if e.Want != "" {
		fmt.Fprintf(&b, "; want %s", e.Want)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// OpError is a failed start or stop.
type OpError struct {
	Resource string
	Type     string
	Op       string // "start", "stop"
	Err      error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("%s of %s resource %q failed: %v", e.Op, e.Type, e.Resource, e.Err)
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// ExitError is a program that answered an operation with a failure status.
type ExitError struct {
	Program string
	Code    int
	// Meaning is the name of the code in the program's convention, such
	// as "OCF_ERR_INSTALLED" or "LSB: program is not running".
	Meaning string
	// Output is the program's one-line summary of what went wrong.
	Output string
}

func (e *ExitError) Error() string {
	s := fmt.Sprintf("%s exited %d", e.Program, e.Code)
	if e.Meaning != "" {
		s += " (" + e.Meaning + ")"
	}
	if e.Output != "" {
		s += ": " + e.Output
	}
	return s
}

// driver is what each type implements; the wrapper adds names and
// timeouts.
type driver interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
	monitor(ctx context.Context) Status
}

// typeInfo describes a resource type.
type typeInfo struct {
	// keys are the parameters the type accepts; nil means the type checks
	// its own (ocf, whose agents declare theirs in meta-data).
	keys     []string
	new      func(spec Spec) (driver, error)
	timeouts Timeouts
}

// serviceTimeouts are the defaults of the types that run a service.
var serviceTimeouts = Timeouts{Start: DefaultStartTimeout, Stop: 5 * time.Second, Monitor: DefaultMonitorTimeout}

var types = map[string]typeInfo{
	"vip":     {keys: vipKeys, new: newVIP, timeouts: Timeouts{Start: 5 * time.Second, Stop: time.Second, Monitor: 5 * time.Second}},
	"systemd": {keys: []string{"unit"}, new: newSystemd, timeouts: serviceTimeouts},
	"runit":   {keys: []string{"service", "svdir"}, new: newRunit, timeouts: serviceTimeouts},
	"ocf":     {keys: nil, new: newOCF, timeouts: Timeouts{Start: DefaultStartTimeout, Stop: DefaultStopTimeout, Monitor: DefaultMonitorTimeout}},
	"exec":    {keys: []string{"path"}, new: newExec, timeouts: serviceTimeouts},
	// A fast shutdown of PostgreSQL writes a checkpoint: 5 s, as for a
	// service; promotion waits for recovery to end.
	"database": {keys: databaseKeys, new: newDatabase, timeouts: Timeouts{Start: 40 * time.Second, Stop: 5 * time.Second, Monitor: 5 * time.Second}},
}

// Types lists the resource types New knows.
func Types() []string {
	out := make([]string, 0, len(types))
	for t := range types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// New validates spec and builds the resource. Errors are *ConfigError.
func New(spec Spec) (Resource, error) {
	if !nameRE.MatchString(spec.Name) {
		return nil, &ConfigError{Resource: spec.Name, Key: "name", Problem: fmt.Sprintf("%q is not a valid resource name", spec.Name),
			Want: "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"}
	}
	info, ok := types[spec.Type]
	if !ok {
		return nil, &ConfigError{Resource: spec.Name, Key: "type", Problem: fmt.Sprintf("unknown resource type %q", spec.Type),
			Want: "one of " + strings.Join(Types(), ", ")}
	}
	for _, t := range []struct {
		key string
		d   *time.Duration
		def time.Duration
	}{
		{"start_timeout", &spec.StartTimeout, info.timeouts.Start},
		{"stop_timeout", &spec.StopTimeout, info.timeouts.Stop},
		{"monitor_timeout", &spec.MonitorTimeout, info.timeouts.Monitor},
	} {
		switch {
		case *t.d < 0:
			return nil, &ConfigError{Resource: spec.Name, Key: t.key, Problem: fmt.Sprintf("negative timeout %s", *t.d),
				Want: "a positive duration such as \"20s\", or leave it out for the default " + t.def.String()}
		case *t.d == 0:
			*t.d = t.def
		}
	}
	if info.keys != nil {
		for k := range spec.Params {
			if !slices.Contains(info.keys, k) {
				return nil, &ConfigError{Resource: spec.Name, Key: k, Problem: fmt.Sprintf("unknown parameter for a %s resource", spec.Type),
					Want: "one of " + strings.Join(info.keys, ", ")}
			}
		}
	}
	if spec.Warm && spec.Type == "vip" {
		return nil, &ConfigError{Resource: spec.Name, Key: "warm", Problem: "a virtual IP cannot be warm: the address is what moves",
			Want: "warm = true on the services that can listen before the address arrives (the PBX), never on the vip"}
	}
	spec.Params = maps.Clone(spec.Params)
	d, err := info.new(spec)
	if err != nil {
		return nil, err
	}
	return &bounded{spec: spec, d: d}, nil
}

// bounded puts names and timeouts around a driver.
type bounded struct {
	spec Spec
	d    driver
}

func (b *bounded) Name() string { return b.spec.Name }
func (b *bounded) Type() string { return b.spec.Type }

func (b *bounded) Start(ctx context.Context) error {
	return b.op(ctx, "start", b.spec.StartTimeout, b.d.start)
}

func (b *bounded) Stop(ctx context.Context) error {
	return b.op(ctx, "stop", b.spec.StopTimeout, b.d.stop)
}

func (b *bounded) op(ctx context.Context, name string, timeout time.Duration, f func(context.Context) error) error {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := f(octx)
	if err == nil {
		return nil
	}
	if timedOut(ctx, octx, err) {
		err = fmt.Errorf("%w after %s (raise %s_timeout if it needs longer): %w", ErrTimeout, timeout, name, err)
	}
	return &OpError{Resource: b.spec.Name, Type: b.spec.Type, Op: name, Err: err}
}

func (b *bounded) Monitor(ctx context.Context) Status {
	octx, cancel := context.WithTimeout(ctx, b.spec.MonitorTimeout)
	defer cancel()
	st := b.d.monitor(octx)
	if st.State != StateRunning && octx.Err() != nil && ctx.Err() == nil {
		return Status{State: StateFailed, Detail: fmt.Sprintf("monitor timed out after %s", b.spec.MonitorTimeout)}
	}
	return st
}

// timedOut reports whether err came from the operation's own deadline
// rather than the caller's cancellation.
func timedOut(parent, op context.Context, err error) bool {
	if parent.Err() != nil {
		return false
	}
	return errors.Is(err, command.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(op.Err(), context.DeadlineExceeded)
}

// inUser is a driver that can tell whether another host still answers for
// what it would take.
type inUser interface {
	inUse(ctx context.Context) (string, error)
}

// InUse asks whether another host still answers for r before r starts
// here: a virtual IP that a neighbour still answers ARP for (RFC 5227's
// probe, as arping -D sends). who says who answers, in a line for the
// operator; "" means nobody does, or that r's type cannot tell (every type
// but vip). err says the probe itself could not run.
func InUse(ctx context.Context, r Resource) (who string, err error) {
	b, ok := r.(*bounded)
	if !ok {
		return "", nil
	}
	iu, ok := b.d.(inUser)
	if !ok {
		return "", nil
	}
	octx, cancel := context.WithTimeout(ctx, b.spec.MonitorTimeout)
	defer cancel()
	who, err = iu.inUse(octx)
	if err != nil {
		return "", fmt.Errorf("probing whether %s resource %q is in use: %w", b.spec.Type, b.spec.Name, err)
	}
	return who, nil
}

// SpecOf returns the spec a resource built by New was made from (with
// default timeouts filled in), and false for other resources.
func SpecOf(r Resource) (Spec, bool) {
	b, ok := r.(*bounded)
	if !ok {
		return Spec{}, false
	}
	s := b.spec
	s.Params = maps.Clone(s.Params)
	return s, true
}
