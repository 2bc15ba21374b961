package enroll

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Service kinds InstallService knows.
const (
	ServiceAuto    = "auto"
	ServiceSystemd = "systemd"
	ServiceRunit   = "runit"
	ServiceNone    = "none"
)

// DetectService picks systemd when it runs the machine, else runit when
// runsvdir's /etc/service exists, else none.
func DetectService() string {
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		return ServiceSystemd
	}
	if _, err := os.Stat("/etc/service"); err == nil {
		return ServiceRunit
	}
	return ServiceNone
}

// InstallService installs and starts ha-agent (binary bin, configuration
// cfgFile) under systemd or runit, as recipes/systemd and recipes/runit
// do. It returns what it did, for the operator.
func InstallService(kind, bin, cfgFile string, p Paths) (string, error) {
	if kind == ServiceAuto || kind == "" {
		kind = DetectService()
	}
	switch kind {
	case ServiceNone:
		return fmt.Sprintf("no service manager set up: start the agent with\n    %s --config %s", bin, cfgFile), nil
	case ServiceSystemd:
		unit := fmt.Sprintf(`[Unit]
Description=hatui node agent (membership, failover, geo manager)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStartPre=%[1]s check-config %[2]s
ExecStart=%[1]s --config %[2]s
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=2
RuntimeDirectory=ha-agent
RuntimeDirectoryMode=0755
StateDirectory=ha-agent
StateDirectoryMode=0750
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`, bin, cfgFile)
		if err := os.WriteFile("/etc/systemd/system/ha-agent.service", []byte(unit), 0o644); err != nil {
			return "", fmt.Errorf("writing the systemd unit: %w", err)
		}
		for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", "ha-agent"}} {
			if out, err := exec.Command("systemctl", args...).CombinedOutput(); err != nil {
				return "", fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
			}
		}
		return "ha-agent enabled and started under systemd (systemctl status ha-agent)", nil
	case ServiceRunit:
		dir := "/etc/sv/ha-agent"
		if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
			return "", fmt.Errorf("creating %s: %w", dir, err)
		}
		run := fmt.Sprintf("#!/bin/sh\nexec 2>&1\nmkdir -p %s %s\n%s check-config %s || exit 1\nexec %s --config %s\n",
			p.Run, p.State, bin, cfgFile, bin, cfgFile)
		logRun := "#!/bin/sh\nmkdir -p /var/log/ha-agent\nexec svlogd -tt /var/log/ha-agent\n"
		if err := os.WriteFile(filepath.Join(dir, "run"), []byte(run), 0o755); err != nil {
			return "", fmt.Errorf("writing the runit service: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "log", "run"), []byte(logRun), 0o755); err != nil {
			return "", fmt.Errorf("writing the runit service: %w", err)
		}
		link := "/etc/service/ha-agent"
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(dir, link); err != nil {
				return "", fmt.Errorf("enabling the runit service: %w", err)
			}
		}
		return "ha-agent enabled under runit (sv status ha-agent)", nil
	}
	return "", fmt.Errorf("unknown service manager %q: use systemd, runit, none or auto", kind)
}
