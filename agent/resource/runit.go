package resource

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/resource/command"
)

// DefaultSvDir is where runit's runsvdir looks for services on Debian.
const DefaultSvDir = "/etc/service"

// runitResource drives a runit service with sv: "sv start" and
// "sv force-stop" wait for the service to reach the state (force-stop kills
// it at the deadline), "sv status" says whether it runs.
//
// Parameters:
//
//	service  a service name under svdir, or an absolute service directory (required)
//	svdir    the directory runsvdir watches (default /etc/service)
type runitResource struct {
	dir string
	sv  string
}

func newRunit(spec Spec) (driver, error) {
	svc := spec.Params["service"]
	svdir, setDir := spec.Params["svdir"]
	want := "a service name such as \"asterisk\" (under svdir) or an absolute service directory"
	var dir string
	switch {
	case svc == "":
		return nil, &ConfigError{Resource: spec.Name, Key: "service", Problem: "missing", Want: want}
	case filepath.IsAbs(svc):
		if setDir {
			return nil, &ConfigError{Resource: spec.Name, Key: "svdir", Problem: "set together with an absolute service directory",
				Want: "either service = \"name\" with svdir, or an absolute service path alone"}
		}
		dir = filepath.Clean(svc)
	case strings.ContainsAny(svc, "/ \t\n") || svc == "." || svc == ".." || strings.HasPrefix(svc, "-"):
		return nil, &ConfigError{Resource: spec.Name, Key: "service", Problem: fmt.Sprintf("%q is not a service name", svc), Want: want}
	default:
		if !setDir {
			svdir = DefaultSvDir
		}
		if !filepath.IsAbs(svdir) {
			return nil, &ConfigError{Resource: spec.Name, Key: "svdir", Problem: fmt.Sprintf("%q is not an absolute path", svdir),
				Want: "the absolute directory runsvdir watches, such as /etc/service"}
		}
		dir = filepath.Join(svdir, svc)
	}
	bin, err := lookBinary(spec.Name, "runit", "sv", "the runit package (apt-get install runit)")
	if err != nil {
		return nil, err
	}
	return &runitResource{dir: dir, sv: bin}, nil
}

// waitSeconds is how long sv may wait for a state change: what is left of
// ctx, less a margin for sv to report before the agent's own deadline.
func waitSeconds(ctx context.Context) string {
	d, ok := ctx.Deadline()
	if !ok {
		return "7" // sv's own default
	}
	left := time.Until(d) - 500*time.Millisecond
	return strconv.Itoa(max(1, int(math.Floor(left.Seconds()))))
}

func (r *runitResource) start(ctx context.Context) error {
	return r.act(ctx, "start")
}

func (r *runitResource) stop(ctx context.Context) error {
	return r.act(ctx, "force-stop")
}

func (r *runitResource) act(ctx context.Context, verb string) error {
	res, err := command.Run(ctx, command.Cmd{Path: r.sv, Args: []string{"-w", waitSeconds(ctx), verb, r.dir}})
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return &ExitError{Program: "sv " + verb + " " + r.dir, Code: res.Code, Output: res.Summary()}
	}
	return nil
}

func (r *runitResource) monitor(ctx context.Context) Status {
	res, err := command.Run(ctx, command.Cmd{Path: r.sv, Args: []string{"status", r.dir}})
	if err != nil {
		return Status{State: StateFailed, Detail: err.Error()}
	}
	st := parseSvStatus(string(res.Stdout))
	if st.Detail == "" {
		st.Detail = res.Summary()
	}
	return st
}

// parseSvStatus reads the first line of "sv status", which names the
// service's state before the first colon:
//
//	run: /etc/service/asterisk: (pid 812) 3600s; run: log: (pid 811) 3600s
//	down: /etc/service/asterisk: 12s, normally up
//	finish: /etc/service/asterisk: (pid 900) 0s, normally up
//	fail: /etc/service/asterisk: runsv not running
//	warning: /etc/service/asterisk: unable to open supervise/ok: file does not exist
func parseSvStatus(out string) Status {
	line, _, _ := strings.Cut(out, "\n")
	line = command.Summary([]byte(line))
	word, rest, ok := strings.Cut(line, ":")
	if !ok {
		if line == "" {
			return Status{State: StateFailed, Detail: "sv status printed nothing"}
		}
		return Status{State: StateFailed, Detail: "unexpected sv status output: " + line}
	}
	// rest is " /dir: details"; keep the details.
	detail := strings.TrimSpace(rest)
	if _, d, ok := strings.Cut(detail, ": "); ok {
		detail = strings.TrimSpace(d)
	}
	switch word {
	case "run":
		return Status{State: StateRunning, Detail: detail}
	case "down":
		return Status{State: StateStopped, Detail: detail}
	case "finish":
		// The run script exited and ./finish is running: not serving.
		return Status{State: StateStopped, Detail: "finishing: " + detail}
	default:
		return Status{State: StateFailed, Detail: line}
	}
}
