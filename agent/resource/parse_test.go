package resource

import (
	"os"
	"strings"
	"testing"

	"github.com/hatui/hatui/agent/resource/command"
	"unicode/utf8"
)

func TestParseSvStatus(t *testing.T) {
	for _, tc := range []struct {
		out    string
		state  State
		detail string
	}{
		{"run: /etc/service/asterisk: (pid 812) 3600s; run: log: (pid 811) 3600s\n", StateRunning, "(pid 812) 3600s; run: log: (pid 811) 3600s"},
		{"run: /tmp/sv/hx: (pid 20865) 1s, normally down\n", StateRunning, "(pid 20865) 1s, normally down"},
		{"down: /etc/service/asterisk: 12s, normally up\n", StateStopped, "12s, normally up"},
		{"down: /tmp/svt/sv/hx: 0s\n", StateStopped, "0s"},
		{"finish: /etc/service/asterisk: (pid 900) 0s, normally up\n", StateStopped, "finishing: (pid 900) 0s, normally up"},
		{"fail: /etc/service/nope: unable to change to service directory: file does not exist\n", StateFailed, "fail: /etc/service/nope: unable to change"},
		{"warning: /etc/service/x: unable to open supervise/ok: file does not exist\n", StateFailed, "warning:"},
		{"", StateFailed, "printed nothing"},
		{"garbage without colon", StateFailed, "unexpected sv status output"},
	} {
		st := parseSvStatus(tc.out)
		if st.State != tc.state || !strings.Contains(st.Detail, tc.detail) {
			t.Errorf("parseSvStatus(%q) = %v, want %s containing %q", tc.out, st, tc.state, tc.detail)
		}
	}
}

func TestIsActiveStatus(t *testing.T) {
	for _, tc := range []struct {
		code           int
		stdout, stderr string
		state          State
		detail         string
	}{
		{0, "active", "", StateRunning, "active"},
		{0, "reloading", "", StateRunning, "reloading"},
		{3, "inactive", "", StateStopped, "inactive"},
		{3, "activating", "", StateStopped, "activating"},
		{3, "failed", "", StateFailed, "unit failed"},
		{1, "", "System has not been booted with systemd as init system (PID 1). Can't operate.", StateFailed, "exited 1: System has not been booted"},
		{0, "", "", StateFailed, "no output"},
		{4, "unknown", "", StateFailed, "exited 4: unknown"},
	} {
		st := isActiveStatus(tc.code, tc.stdout, tc.stderr)
		if st.State != tc.state || !strings.Contains(st.Detail, tc.detail) {
			t.Errorf("isActiveStatus(%d, %q, %q) = %v, want %s containing %q", tc.code, tc.stdout, tc.stderr, st, tc.state, tc.detail)
		}
	}
}

func TestLSBStatus(t *testing.T) {
	for _, tc := range []struct {
		code  int
		state State
		want  string
	}{
		{0, StateRunning, ""},
		{3, StateStopped, ""},
		{1, StateFailed, "dead and a pid file exists"},
		{2, StateFailed, "lock file"},
		{4, StateFailed, "unknown"},
		{7, StateFailed, "want 0 running or 3 stopped"},
	} {
		st := lsbStatus(tc.code, "")
		if st.State != tc.state || !strings.Contains(st.Detail, tc.want) {
			t.Errorf("lsbStatus(%d) = %v", tc.code, st)
		}
	}
}

func TestParseOCFMetaData(t *testing.T) {
	b, err := os.ReadFile("testdata/ocf-dummy-meta-data.xml")
	if err != nil {
		t.Fatal(err)
	}
	md, err := ParseOCFMetaData(b)
	if err != nil {
		t.Fatal(err)
	}
	if md.Name != "Dummy" || len(md.Parameters) < 2 || md.Parameters[0].Name != "state" {
		t.Fatalf("parsed %+v", md)
	}
	if !strings.Contains(actionNames(md), "monitor") {
		t.Fatalf("actions %v lack monitor", md.Actions)
	}
	for _, bad := range []string{"", "<html></html>", "<resource-agent", "not xml at all"} {
		if _, err := ParseOCFMetaData([]byte(bad)); err == nil {
			t.Errorf("ParseOCFMetaData(%q) succeeded", bad)
		}
	}
}

func actionNames(md OCFMetaData) string {
	var s []string
	for _, a := range md.Actions {
		s = append(s, a.Name)
	}
	return strings.Join(s, ",")
}

func FuzzParseSvStatus(f *testing.F) {
	for _, s := range []string{
		"run: /etc/service/asterisk: (pid 812) 3600s; run: log: (pid 811) 3600s\n",
		"down: /etc/service/asterisk: 12s, normally up, want up\n",
		"finish: /x: (pid 1) 0s\n",
		"fail: /x: runsv not running\n",
		"warning: /x: unable to open supervise/ok: file does not exist\n",
		"", ":", "run:", "\x1b[31mrun\x1b[0m: x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		st := parseSvStatus(out)
		switch st.State {
		case StateRunning, StateStopped, StateFailed:
		default:
			t.Fatalf("state %q", st.State)
		}
		if !utf8.ValidString(st.Detail) || strings.ContainsAny(st.Detail, "\n\r\x1b") {
			t.Fatalf("detail %q is not one clean line", st.Detail)
		}
		first, _, _ := strings.Cut(out, "\n")
		if st.State == StateRunning && !strings.HasPrefix(command.Summary([]byte(first)), "run:") {
			t.Fatalf("%q read as running", out)
		}
	})
}

func FuzzParseOCFMetaData(f *testing.F) {
	b, err := os.ReadFile("testdata/ocf-dummy-meta-data.xml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`<resource-agent name="x"><parameters><parameter name="a" required="1"><content type="integer"/></parameter></parameters></resource-agent>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><resource-agent/>`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := ParseOCFMetaData(b)
		if err != nil {
			return
		}
		// Whatever was parsed, checking parameters against it must not
		// panic and must reject what it does not declare.
		params := map[string]string{"hatui_not_declared_xyz": "1"}
		for _, p := range md.Parameters {
			if p.Name == "hatui_not_declared_xyz" {
				return
			}
		}
		if err := md.Check("r", params); err == nil {
			t.Fatalf("undeclared parameter accepted by %+v", md)
		}
	})
}

func FuzzOCFMonitorStatus(f *testing.F) {
	f.Add(0, "")
	f.Add(7, "Probe(x)[1]: INFO: not running")
	f.Add(9, "ERROR: \x1b[1mfailed")
	f.Fuzz(func(t *testing.T, code int, out string) {
		st := OCFMonitorStatus(code, out)
		want := StateFailed
		switch code {
		case OCFSuccess, OCFRunningMaster, OCFDegraded, OCFDegradedMaster:
			want = StateRunning
		case OCFNotRunning:
			want = StateStopped
		}
		if st.State != want {
			t.Fatalf("code %d → %v, want %s", code, st, want)
		}
	})
}
