package fenceagent

import (
	"strings"
	"testing"

	"github.com/hatui/hatui/switchdrv"
)

func TestStdin(t *testing.T) {
	got := string(Stdin("off", "3", map[string]string{"ip": "192.0.2.9", "password": "s e"}))
	want := "# hatui switchdrv\naction=off\nplug=3\nip=192.0.2.9\npassword=s e\n"
	if got != want {
		t.Fatalf("stdin =\n%s\nwant\n%s", got, want)
	}
}

func TestStatusFromExit(t *testing.T) {
	for _, tc := range []struct {
		exit    int
		out     string
		want    switchdrv.Power
		wantErr string
	}{
		{0, "Status: ON\n", switchdrv.PowerOn, ""},
		{2, "Status: OFF\n", switchdrv.PowerOff, ""},
		{0, "", switchdrv.PowerOn, ""},
		{2, "noise\nstatus : off\n", switchdrv.PowerOff, ""},
		{1, "", "", "could not get the status"},
		{0, "Status: OFF\n", "", "printed status off but exited 0"},
		{3, "", "", "not a status"},
	} {
		got, err := StatusFromExit(tc.exit, []byte(tc.out))
		if got != tc.want || (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("StatusFromExit(%d, %q) = %q, %v; want %q, %q", tc.exit, tc.out, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseList(t *testing.T) {
	got := ParseList([]byte("1,web-1\n2,\n\n ,x\n3\n"))
	if len(got) != 3 || got["1"] != "web-1" || got["2"] != "" || got["3"] != "" {
		t.Fatalf("ParseList = %v", got)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Status: ON\n"), 0)
	f.Add([]byte("Status: OFF\n"), 2)
	f.Add([]byte("2026-11-23 14:44:23,067 ERROR: Failed: Unable to obtain correct plug status\n"), 1)
	f.Add([]byte("1,web-1\n2,web-2\n"), 0)
	f.Fuzz(func(t *testing.T, out []byte, exit int) {
		p, found := ParseStatus(out)
		if found != (p != switchdrv.PowerUnknown) {
			t.Fatalf("ParseStatus(%q) = %q, %v", out, p, found)
		}
		got, err := StatusFromExit(exit, out)
		if err == nil && got != switchdrv.PowerOn && got != switchdrv.PowerOff {
			t.Fatalf("StatusFromExit(%d, %q) = %q without error", exit, out, got)
		}
		if err == nil && exit != ExitOK && exit != ExitOff {
			t.Fatalf("exit %d accepted", exit)
		}
		_ = ParseList(out)
	})
}
