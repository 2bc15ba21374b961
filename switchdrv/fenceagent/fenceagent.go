// Package fenceagent makes any ClusterLabs fence agent (fence_ipmilan,
// fence_apc, fence_virsh, ... any fence_* program) a [switchdrv.PowerSwitch],
// so every device those agents support can fence a hatui node.
//
// The agent is run once per action with its options as key=value lines on
// stdin, never on the command line, so passwords do not show in ps. Exit
// codes follow the convention in shared/reference/devices.md:
//
//	on, off   0 success, anything else failure
//	reboot    0 success (the off part worked)
//	status    0 on, 2 off, 1 error or unreachable
//	monitor   0 the device answers
//
// After on, off and reboot the driver asks "status" again and reports the
// outlet verified only when that agrees: an agent's "success" is not taken
// as proof that a node is off (devices.md: query status after off; never
// assume a state when the device does not answer). A run that outlives its
// timeout is killed with its whole process group and counts as a failure.
//
// # When the agent or its node dies
//
// Nothing happens: the fenced node's power stays as it was. Fencing is done
// by a live agent to its peer.
//
// # Registry options ("fence")
//
//	agent     the fence agent: a name found in PATH or an absolute path; its
//	          name must start with "fence_" (required)
//	plugs     comma-separated plug (port) names, one outlet each; empty for
//	          agents that fence one machine and take no plug
//	timeout   per agent run (60s: agents wait for power to settle)
//	<other>   every other option is passed to the agent as a key=value line
//	          (ip, username, password, ssl, lanplus, ...)
package fenceagent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hatui/hatui/switchdrv"
	"github.com/hatui/hatui/switchdrv/internal/devctx"
)

// DefaultOutlet names the one outlet of an agent configured without plugs.
const DefaultOutlet = "main"

// Exit codes of the fence agent convention.
const (
	ExitOK    = 0
	ExitError = 1
	ExitOff   = 2 // status only
)

func init() {
	switchdrv.Register("fence", func(o switchdrv.Options) (switchdrv.Device, error) {
		c, err := ParseOptions(o)
		if err != nil {
			return nil, err
		}
		return New(c), nil
	})
}

// Config configures a [Device].
type Config struct {
	Agent   string            // name or path of the fence_* program
	Plugs   []string          // outlets; empty: one outlet, DefaultOutlet, and no plug line
	Timeout time.Duration     // per run
	Args    map[string]string // passed on stdin
}

// reserved keys are set by the driver for each run.
var reserved = []string{"action", "plug", "port", "option"}

// ParseOptions reads a Config from registry options.
func ParseOptions(o switchdrv.Options) (Config, error) {
	r := switchdrv.NewOptionReader("fence", o)
	c := Config{
		Agent:   r.Required("agent"),
		Timeout: r.Duration("timeout", 60*time.Second),
	}
	if c.Agent != "" && !strings.HasPrefix(filepath.Base(c.Agent), "fence_") {
		r.Failf("agent", "%q is not a fence agent: its name must start with fence_", c.Agent)
	}
	for p := range strings.SplitSeq(r.String("plugs", ""), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Plugs = append(c.Plugs, p)
		}
	}
	for _, k := range reserved {
		if _, ok := o[k]; ok {
			r.Failf(k, "is set by the driver for each action; list outlets in plugs")
			r.String(k, "")
		}
	}
	c.Args = r.Rest()
	for k, v := range c.Args {
		if strings.ContainsAny(k, "=\n\r#") || k == "" || strings.ContainsAny(v, "\n\r") {
			r.Failf(k, "keys and values must be single lines, keys without = or #")
		}
	}
	return c, r.Done()
}

// Device runs one fence agent; a [switchdrv.PowerSwitch] and
// [switchdrv.Checker].
type Device struct {
	cfg  Config
	name string
	life *devctx.Lifetime
	mu   sync.Mutex // one run at a time: agents are not made for concurrency
}

var (
	_ switchdrv.PowerSwitch = (*Device)(nil)
	_ switchdrv.Checker     = (*Device)(nil)
)

// New returns a Device; it does no I/O.
func New(c Config) *Device {
	name := "fence " + filepath.Base(c.Agent)
	if ip := c.Args["ip"]; ip != "" {
		name += " " + ip
	} else if ip := c.Args["ipaddr"]; ip != "" {
		name += " " + ip
	}
	return &Device{cfg: c, name: name, life: devctx.New()}
}

// Name implements switchdrv.Device.
func (d *Device) Name() string { return d.name }

// Close kills a run in progress.
func (d *Device) Close() error {
	d.life.Close()
	return nil
}

// result is one agent run.
type result struct {
	exit   int
	stdout []byte
	stderr []byte
}

// lastWords is the end of the agent's stderr, for messages.
func (r result) lastWords() string {
	s := strings.TrimSpace(string(r.stderr))
	if s == "" {
		s = strings.TrimSpace(string(r.stdout))
	}
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 200 {
				l = l[:200]
			}
			return l
		}
	}
	return "(no output)"
}

// Stdin returns the lines an agent gets for one action. Exported for the
// documentation's sake: it is the whole contract with the agent.
func Stdin(action, plug string, args map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("# hatui switchdrv\n")
	fmt.Fprintf(&b, "action=%s\n", action)
	if plug != "" {
		fmt.Fprintf(&b, "plug=%s\n", plug)
	}
	for _, k := range slices.Sorted(maps.Keys(args)) {
		fmt.Fprintf(&b, "%s=%s\n", k, args[k])
	}
	return b.Bytes()
}

// run runs the agent once. A run that cannot start, or is killed, is an
// error; any exit code is a result.
func (d *Device) run(ctx context.Context, op, action, plug string) (result, error) {
	if d.life.Closed() {
		return result{}, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
	}
	path, err := exec.LookPath(d.cfg.Agent)
	if err != nil {
		return result{}, switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err).
			WithHint("install the fence agent (Debian: fence-agents) or fix agent in the node config")
	}
	ctx, cancel := d.life.Bound(ctx, d.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = bytes.NewReader(Stdin(action, plug, d.cfg.Args))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Agents run ssh, ipmitool, snmp tools: kill the whole group, or a
	// hung child would outlive the timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	res := result{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		if d.life.Closed() {
			return res, switchdrv.NewError(switchdrv.ErrClosed, d.name, op, nil)
		}
		return res, switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op,
			"%s did not finish within %v", filepath.Base(path), d.cfg.Timeout).
			WithHint("check the fenced device's network; raise timeout if the agent is just slow")
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.exit = ee.ExitCode()
	default:
		return res, switchdrv.NewError(switchdrv.ErrConfig, d.name, op, err)
	}
	return res, nil
}

// ParseStatus finds the "Status: ON" or "Status: OFF" line fence agents
// print for action=status. found is false when there is none (some agents
// say nothing and answer with the exit code alone).
func ParseStatus(stdout []byte) (p switchdrv.Power, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 1024), 64<<10)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "status") {
			continue
		}
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "ON":
			return switchdrv.PowerOn, true
		case "OFF":
			return switchdrv.PowerOff, true
		}
	}
	return switchdrv.PowerUnknown, false
}

// StatusFromExit maps a status run to a power state by the convention
// (0 on, 2 off, 1 error), cross-checked against the agent's "Status:" line.
func StatusFromExit(exit int, stdout []byte) (switchdrv.Power, error) {
	var p switchdrv.Power
	switch exit {
	case ExitOK:
		p = switchdrv.PowerOn
	case ExitOff:
		p = switchdrv.PowerOff
	case ExitError:
		return switchdrv.PowerUnknown, errors.New("the agent could not get the status (exit 1)")
	default:
		return switchdrv.PowerUnknown, fmt.Errorf("exit code %d is not a status (0 on, 2 off, 1 error)", exit)
	}
	if said, ok := ParseStatus(stdout); ok && said != p {
		return switchdrv.PowerUnknown, fmt.Errorf("the agent printed status %s but exited %d", said, exit)
	}
	return p, nil
}

func (d *Device) plug(op, outlet string) (string, error) {
	if len(d.cfg.Plugs) == 0 {
		if outlet == DefaultOutlet {
			return "", nil
		}
	} else if slices.Contains(d.cfg.Plugs, outlet) {
		return outlet, nil
	}
	outs, _ := d.Outlets(context.Background())
	return "", switchdrv.Errorf(switchdrv.ErrConfig, d.name, op, "no outlet %q (configured: %s)", outlet, strings.Join(outs, ", "))
}

// Outlets implements switchdrv.PowerSwitch: the configured plugs.
func (d *Device) Outlets(context.Context) ([]string, error) {
	if len(d.cfg.Plugs) == 0 {
		return []string{DefaultOutlet}, nil
	}
	return slices.Clone(d.cfg.Plugs), nil
}

// status runs action=status. Callers hold mu.
func (d *Device) status(ctx context.Context, op, outlet, plug string) (switchdrv.PowerState, error) {
	st := switchdrv.PowerState{Outlet: outlet}
	res, err := d.run(ctx, op, "status", plug)
	if err != nil {
		return st, err
	}
	p, err := StatusFromExit(res.exit, res.stdout)
	if err != nil {
		kind := switchdrv.ErrBadReply
		if res.exit == ExitError {
			kind = switchdrv.ErrUnreachable
		}
		return st, switchdrv.Errorf(kind, d.name, op, "%v: %s", err, res.lastWords())
	}
	st.Power, st.Verified = p, true
	return st, nil
}

// Power implements switchdrv.PowerSwitch with action=status.
func (d *Device) Power(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	op := "status of " + outlet
	plug, err := d.plug(op, outlet)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status(ctx, op, outlet, plug)
}

// change runs action and then status, which must read want.
func (d *Device) change(ctx context.Context, outlet, action string, want switchdrv.Power) (switchdrv.PowerState, error) {
	op := action + " " + outlet
	plug, err := d.plug(op, outlet)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.run(ctx, op, action, plug)
	if err != nil {
		return switchdrv.PowerState{Outlet: outlet}, err
	}
	if res.exit != ExitOK {
		// The convention folds "unreachable" and "could not verify" into
		// exit 1; either way nothing is known of the outlet.
		return switchdrv.PowerState{Outlet: outlet}, switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op,
			"the agent failed (exit %d): %s", res.exit, res.lastWords())
	}
	st, err := d.status(ctx, op+": verify", outlet, plug)
	if err != nil {
		st.Verified = false
		return st, err
	}
	if st.Power != want {
		st.Verified = false
		return st, switchdrv.Errorf(switchdrv.ErrVerifyTimeout, d.name, op,
			"the agent reported success but status reads %s", st.Power)
	}
	return st, nil
}

// SetPower implements switchdrv.PowerSwitch with action=on or off, then
// status.
func (d *Device) SetPower(ctx context.Context, outlet string, on bool) (switchdrv.PowerState, error) {
	if on {
		return d.change(ctx, outlet, "on", switchdrv.PowerOn)
	}
	return d.change(ctx, outlet, "off", switchdrv.PowerOff)
}

// Cycle implements switchdrv.PowerSwitch with action=reboot, then status.
func (d *Device) Cycle(ctx context.Context, outlet string) (switchdrv.PowerState, error) {
	return d.change(ctx, outlet, "reboot", switchdrv.PowerOn)
}

// Check implements switchdrv.Checker with action=monitor.
func (d *Device) Check(ctx context.Context) error {
	const op = "monitor"
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.run(ctx, op, "monitor", "")
	if err != nil {
		return err
	}
	if res.exit != ExitOK {
		return switchdrv.Errorf(switchdrv.ErrUnreachable, d.name, op, "exit %d: %s", res.exit, res.lastWords())
	}
	return nil
}

// ParseList parses the output of action=list: one "port,alias" line per
// plug (the alias may be empty). Lines without a port are skipped.
func ParseList(stdout []byte) map[string]string {
	plugs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 1024), 64<<10)
	for sc.Scan() {
		port, alias, _ := strings.Cut(strings.TrimSpace(sc.Text()), ",")
		if port = strings.TrimSpace(port); port != "" {
			plugs[port] = strings.TrimSpace(alias)
		}
	}
	return plugs
}

// List asks the agent which plugs the device has (action=list), to help an
// engineer fill in plugs. Agents that cannot list answer ErrUnsupported.
func (d *Device) List(ctx context.Context) (map[string]string, error) {
	const op = "list"
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.run(ctx, op, "list", "")
	if err != nil {
		return nil, err
	}
	if res.exit != ExitOK {
		return nil, switchdrv.Errorf(switchdrv.ErrUnsupported, d.name, op, "exit %d: %s", res.exit, res.lastWords())
	}
	return ParseList(res.stdout), nil
}
