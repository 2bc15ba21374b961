package resource

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hatui/hatui/agent/resource/command"
)

// execResource runs an operator's script as "path start", "path stop" and
// "path status", the way Heartbeat ran LSB init scripts. Status answers
// with LSB exit codes: 0 running, 3 not running, anything else failed.
//
// Parameters:
//
//	path  absolute path of the script (required)
type execResource struct {
	name string
	path string
}

func newExec(spec Spec) (driver, error) {
	path := spec.Params["path"]
	if err := checkExecutable(spec.Name, "path", path, "an absolute path to an executable script taking start, stop and status"); err != nil {
		return nil, err
	}
	return &execResource{name: spec.Name, path: path}, nil
}

// checkExecutable says whether path names an executable regular file,
// as a *ConfigError for key when it does not.
func checkExecutable(res, key, path, want string) error {
	if path == "" {
		return &ConfigError{Resource: res, Key: key, Problem: "missing", Want: want}
	}
	if !filepath.IsAbs(path) {
		return &ConfigError{Resource: res, Key: key, Problem: fmt.Sprintf("%q is not an absolute path", path), Want: want}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return &ConfigError{Resource: res, Key: key, Problem: fmt.Sprintf("%s is not installed (%v)", path, err), Want: want, Err: err}
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return &ConfigError{Resource: res, Key: key, Problem: fmt.Sprintf("%s is not an executable file (mode %s)", path, fi.Mode()),
			Want: want + " (chmod +x it)"}
	}
	return nil
}

// lookBinary finds a tool the type needs on PATH.
func lookBinary(res, typ, bin, hint string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", &ConfigError{Resource: res, Problem: fmt.Sprintf("%s resources need %s, which is not on PATH", typ, bin),
			Want: hint, Err: err}
	}
	return p, nil
}

func (e *execResource) run(ctx context.Context, action string) (command.Result, error) {
	return command.Run(ctx, command.Cmd{
		Path: e.path,
		Args: []string{action},
		Env:  []string{"HATUI_RESOURCE=" + e.name},
	})
}

func (e *execResource) start(ctx context.Context) error {
	return e.act(ctx, "start")
}

func (e *execResource) stop(ctx context.Context) error {
	return e.act(ctx, "stop")
}

func (e *execResource) act(ctx context.Context, action string) error {
	res, err := e.run(ctx, action)
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return &ExitError{Program: e.path + " " + action, Code: res.Code, Output: res.Summary()}
	}
	return nil
}

func (e *execResource) monitor(ctx context.Context) Status {
	res, err := e.run(ctx, "status")
	if err != nil {
		return Status{State: StateFailed, Detail: err.Error()}
	}
	return lsbStatus(res.Code, res.Summary())
}

// lsbStatus maps an LSB init script's status exit code.
func lsbStatus(code int, out string) Status {
	withOut := func(s string) string {
		if out == "" {
			return s
		}
		return s + ": " + out
	}
	switch code {
	case 0:
		return Status{State: StateRunning, Detail: out}
	case 3:
		return Status{State: StateStopped, Detail: out}
	case 1:
		return Status{State: StateFailed, Detail: withOut("status 1: program is dead and a pid file exists")}
	case 2:
		return Status{State: StateFailed, Detail: withOut("status 2: program is dead and a lock file exists")}
	case 4:
		return Status{State: StateFailed, Detail: withOut("status 4: program status is unknown")}
	default:
		return Status{State: StateFailed, Detail: withOut(fmt.Sprintf("status exited %d (want 0 running or 3 stopped)", code))}
	}
}
