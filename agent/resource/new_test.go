package resource

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNewRejectsBadSpecs checks that every start-up error names the
// resource and the key at fault and says what form is wanted.
func TestNewRejectsBadSpecs(t *testing.T) {
	dir := t.TempDir()
	script := lsbScript(t, dir, "ok", filepath.Join(dir, "log"))
	notExec := filepath.Join(dir, "plain.txt")
	writeScript(t, dir, "plain.txt", "")
	if err := os.Chmod(notExec, 0o644); err != nil {
		t.Fatal(err)
	}
	emptyPath := t.TempDir() // a PATH holding neither systemctl nor sv

	for _, tc := range []struct {
		name    string
		spec    Spec
		path    string // PATH for the case, "" keeps it
		key     string
		problem string
		want    string
	}{
		{"unknown type", Spec{Name: "r1", Type: "lsb"}, "", "type", `unknown resource type "lsb"`, "exec, ocf, runit, systemd, vip"},
		{"bad name", Spec{Name: "no spaces", Type: "exec"}, "", "name", "not a valid resource name", "letters, digits"},
		{"negative timeout", Spec{Name: "r1", Type: "exec", StopTimeout: -time.Second, Params: map[string]string{"path": script}}, "", "stop_timeout", "negative timeout", "positive duration"},
		{"unknown parameter", Spec{Name: "r1", Type: "exec", Params: map[string]string{"path": script, "pth": "x"}}, "", "pth", "unknown parameter", "one of path"},
		{"exec missing path", Spec{Name: "r1", Type: "exec"}, "", "path", "missing", "absolute path"},
		{"exec relative path", Spec{Name: "r1", Type: "exec", Params: map[string]string{"path": "bin/start"}}, "", "path", "not an absolute path", "absolute path"},
		{"exec missing binary", Spec{Name: "r1", Type: "exec", Params: map[string]string{"path": "/nonexistent/hatui-start"}}, "", "path", "/nonexistent/hatui-start is not installed", "executable script"},
		{"exec not executable", Spec{Name: "r1", Type: "exec", Params: map[string]string{"path": notExec}}, "", "path", "not an executable file", "chmod +x"},
		{"systemd missing binary", Spec{Name: "r2", Type: "systemd", Params: map[string]string{"unit": "asterisk.service"}}, emptyPath, "", "need systemctl, which is not on PATH", "booted with systemd"},
		{"systemd bad unit", Spec{Name: "r2", Type: "systemd", Params: map[string]string{"unit": "-x"}}, "", "unit", "read as an option", "unit name"},
		{"runit missing binary", Spec{Name: "r3", Type: "runit", Params: map[string]string{"service": "asterisk"}}, emptyPath, "", "need sv, which is not on PATH", "apt-get install runit"},
		{"runit bad service", Spec{Name: "r3", Type: "runit", Params: map[string]string{"service": "a/b"}}, "", "service", "not a service name", "service name"},
		{"runit both", Spec{Name: "r3", Type: "runit", Params: map[string]string{"service": "/etc/sv/x", "svdir": "/etc/service"}}, "", "svdir", "absolute service directory", "either"},
		{"ocf missing agent param", Spec{Name: "r4", Type: "ocf"}, "", "agent", "missing", "agent name"},
		{"ocf agent not installed", Spec{Name: "r4", Type: "ocf", Params: map[string]string{"agent": "NoSuchAgent", "ocf_root": dir}}, "", "agent", "NoSuchAgent is not installed", "resource-agents"},
		{"ocf bad reskey", Spec{Name: "r4", Type: "ocf", Params: map[string]string{"agent": "x", "ocf_root": dir, "state-file": "x"}}, "", "", "", ""},
		{"vip missing ip", Spec{Name: "v", Type: "vip", Params: map[string]string{"interface": "eth0"}}, "", "ip", "missing", "192.0.2.10/24"},
		{"vip no prefix", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10", "interface": "eth0"}}, "", "ip", "not an address with prefix", "192.0.2.10/24"},
		{"vip ipv6", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "2001:db8::1/64", "interface": "eth0"}}, "", "ip", "not IPv4", "IPv4"},
		{"vip bad octet", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.300/24", "interface": "eth0"}}, "", "ip", "not an address with prefix", "prefix length"},
		{"vip broadcast", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.255/24", "interface": "eth0"}}, "", "ip", "broadcast address", "IPv4"},
		{"vip bad interface", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0:1"}}, "", "interface", "not an interface name", "eth0"},
		{"vip bad arp_count", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0", "arp_count": "many"}}, "", "arp_count", "not a count", "rounds"},
		{"vip bad arp_interval", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0", "arp_interval": "1h"}}, "", "arp_interval", "not a duration from 10ms", "200ms"},
		{"vip bad probe_count", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0", "probe_count": "-1"}}, "", "probe_count", "not a count", "ARP probes"},
		{"vip bad probe_interval", Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0", "probe_interval": "1us"}}, "", "probe_interval", "not a duration from 10ms", "50ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			if tc.name == "ocf bad reskey" {
				// Needs an installed agent to get as far as the parameters.
				root := probeRoot(t)
				tc.spec.Params["ocf_root"], tc.spec.Params["provider"], tc.spec.Params["agent"] = root, "hatui", "Probe"
				tc.key, tc.problem, tc.want = "state-file", "not usable as an OCF parameter name", "letters, digits and '_'"
			}
			r, err := New(tc.spec)
			if err == nil {
				t.Fatalf("New = %v, want an error", r)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			msg := err.Error()
			if ce.Resource != tc.spec.Name || !strings.Contains(msg, `resource "`+tc.spec.Name+`"`) {
				t.Errorf("error %q does not name resource %q", msg, tc.spec.Name)
			}
			if ce.Key != tc.key || (tc.key != "" && !strings.Contains(msg, `parameter "`+tc.key+`"`)) {
				t.Errorf("error %q: key = %q, want %q", msg, ce.Key, tc.key)
			}
			if !strings.Contains(msg, tc.problem) {
				t.Errorf("error %q does not say %q", msg, tc.problem)
			}
			if !strings.Contains(ce.Want, tc.want) {
				t.Errorf("error %q: want-part %q does not mention %q", msg, ce.Want, tc.want)
			}
		})
	}
}

// TestNewFillsDefaultTimeouts: a timeout left out takes its type's
// default; one given is kept. An address stops within a second and a
// service within five, so that the stop budget of a usual group (a VIP and
// a PBX) is seconds, not Pacemaker's 20 s per resource.
func TestNewFillsDefaultTimeouts(t *testing.T) {
	dir := t.TempDir()
	script := lsbScript(t, dir, "a", filepath.Join(dir, "l"))
	for _, tc := range []struct {
		spec Spec
		want Timeouts
	}{
		{Spec{Name: "a", Type: "exec", Params: map[string]string{"path": script}, StopTimeout: 7 * time.Second},
			Timeouts{Start: DefaultStartTimeout, Stop: 7 * time.Second, Monitor: DefaultMonitorTimeout}},
		{Spec{Name: "a", Type: "exec", Params: map[string]string{"path": script}},
			Timeouts{Start: DefaultStartTimeout, Stop: 5 * time.Second, Monitor: DefaultMonitorTimeout}},
		{Spec{Name: "v", Type: "vip", Params: map[string]string{"ip": "192.0.2.10/24", "interface": "eth0"}},
			Timeouts{Start: 5 * time.Second, Stop: time.Second, Monitor: 5 * time.Second}},
	} {
		r := mustNew(t, tc.spec)
		s, ok := SpecOf(r)
		if !ok {
			t.Fatal("SpecOf: not built by New")
		}
		if got := (Timeouts{s.StartTimeout, s.StopTimeout, s.MonitorTimeout}); got != tc.want {
			t.Errorf("%s resource: timeouts %+v, want %+v", tc.spec.Type, got, tc.want)
		}
		if d := DefaultTimeouts(tc.spec.Type); tc.spec.StopTimeout == 0 && d != tc.want {
			t.Errorf("DefaultTimeouts(%s) = %+v, want %+v", tc.spec.Type, d, tc.want)
		}
	}
	if d := DefaultTimeouts("ocf"); d.Stop != DefaultStopTimeout {
		t.Errorf("ocf stop default %v, want Pacemaker's %v", d.Stop, DefaultStopTimeout)
	}
}
