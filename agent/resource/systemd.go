package resource

import (
	"context"
	"fmt"
	"strings"

	"github.com/hatui/hatui/agent/resource/command"
)

// systemdResource drives a unit with systemctl start, stop and is-active.
// systemctl start blocks until the unit is up (or its start job failed),
// which is what a group needs before starting the next resource.
//
// Parameters:
//
//	unit  the unit name, such as "asterisk.service" (required)
type systemdResource struct {
	unit      string
	systemctl string
}

func newSystemd(spec Spec) (driver, error) {
	unit := spec.Params["unit"]
	if err := checkUnitName(unit); err != nil {
		return nil, &ConfigError{Resource: spec.Name, Key: "unit", Problem: err.Error(),
			Want: "a systemd unit name such as \"asterisk.service\""}
	}
	bin, err := lookBinary(spec.Name, "systemd", "systemctl",
		"a node booted with systemd, or a runit or exec resource instead")
	if err != nil {
		return nil, err
	}
	return &systemdResource{unit: unit, systemctl: bin}, nil
}

func checkUnitName(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("missing")
	case strings.HasPrefix(u, "-"):
		return fmt.Errorf("%q starts with '-' and would be read as an option", u)
	case strings.ContainsAny(u, "/ \t\n\\"):
		return fmt.Errorf("%q contains '/', '\\' or white space", u)
	case len(u) > 255:
		return fmt.Errorf("unit name is %d bytes long, longer than systemd's limit of 255", len(u))
	}
	return nil
}

func (s *systemdResource) start(ctx context.Context) error {
	return s.act(ctx, "start")
}

func (s *systemdResource) stop(ctx context.Context) error {
	err := s.act(ctx, "stop")
	if ee, ok := err.(*ExitError); ok && ee.Code == 5 {
		// 5: the unit is not loaded, so it is not running either.
		return nil
	}
	return err
}

func (s *systemdResource) act(ctx context.Context, verb string) error {
	res, err := command.Run(ctx, command.Cmd{Path: s.systemctl, Args: []string{verb, s.unit}})
	if err != nil {
		return err
	}
	if res.Code != 0 {
		return &ExitError{Program: "systemctl " + verb + " " + s.unit, Code: res.Code, Output: res.Summary()}
	}
	return nil
}

func (s *systemdResource) monitor(ctx context.Context) Status {
	res, err := command.Run(ctx, command.Cmd{Path: s.systemctl, Args: []string{"is-active", s.unit}})
	if err != nil {
		return Status{State: StateFailed, Detail: err.Error()}
	}
	return isActiveStatus(res.Code, command.Summary(res.Stdout), command.Summary(res.Stderr))
}

// isActiveStatus maps "systemctl is-active": it prints the unit's active
// state on stdout and exits 0 only when the unit is active. When systemd
// itself cannot be reached, stdout is empty and stderr says why.
func isActiveStatus(code int, stdout, stderr string) Status {
	word, _, _ := strings.Cut(stdout, " ")
	switch {
	case code == 0 && (word == "active" || word == "reloading" || word == "refreshing"):
		return Status{State: StateRunning, Detail: word}
	case word == "inactive":
		return Status{State: StateStopped, Detail: word}
	case word == "activating" || word == "deactivating":
		// In transition: not serving now. Reported as stopped so a
		// monitor during a restart is not counted as a failure of the
		// unit, only as not (yet) running.
		return Status{State: StateStopped, Detail: word}
	case word == "failed":
		return Status{State: StateFailed, Detail: "unit failed (see journalctl -u for why)"}
	}
	detail := stderr
	if detail == "" {
		detail = stdout
	}
	if detail == "" {
		detail = "no output"
	}
	return Status{State: StateFailed, Detail: fmt.Sprintf("systemctl is-active exited %d: %s", code, detail)}
}
