package sshdial

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		err  string
	}{
		{"pbx-a1", Target{Host: "pbx-a1"}, ""},
		{"ops@pbx-a1", Target{User: "ops", Host: "pbx-a1"}, ""},
		{"ops@pbx-a1:2222", Target{User: "ops", Host: "pbx-a1", Port: 2222}, ""},
		{"10.1.1.1:22", Target{Host: "10.1.1.1", Port: 22}, ""},
		{"[fd00::1]:2222", Target{Host: "fd00::1", Port: 2222}, ""},
		{"ops@[fd00::1]", Target{User: "ops", Host: "fd00::1"}, ""},
		{"fd00::1", Target{Host: "fd00::1"}, ""},
		{"ssh://ops@pbx-a1:2222/", Target{User: "ops", Host: "pbx-a1", Port: 2222}, ""},
		// The last '@' splits, as ssh does: users may contain '@'.
		{"ops@corp@pbx", Target{User: "ops@corp", Host: "pbx"}, ""},
		{"", Target{}, "empty"},
		{"@pbx", Target{}, "user before '@' is empty"},
		{"ops@", Target{}, "no host"},
		{"pbx:", Target{}, "empty port"},
		{"pbx:0", Target{}, "from 1 to 65535"},
		{"pbx:65536", Target{}, "from 1 to 65535"},
		{"pbx:ssh", Target{}, "not a number"},
		{"[fd00::1", Target{}, "without ']'"},
		{"[fd00::1]x", Target{}, "after ']'"},
		{"-oProxyCommand=x", Target{}, "cannot start with '-'"},
		{"pbx a", Target{}, "spaces"},
		{"a,b", Target{}, "commas"},
		{"pbx/x", Target{}, "'/'"},
		{"pbx\n", Target{}, "control"},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "[user@]host[:port]") {
				t.Errorf("ParseTarget(%q) err = %v, want one containing %q and the syntax", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		// String round-trips.
		if back, err := ParseTarget(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q via %q: %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestParseJumps(t *testing.T) {
	got, err := parseJumps("ops@bastion:2022,relay,[fd00::9]:22")
	want := []Target{{User: "ops", Host: "bastion", Port: 2022}, {Host: "relay"}, {Host: "fd00::9", Port: 22}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseJumps = %+v, %v; want %+v", got, err, want)
	}
	if got, err := parseJumps("NONE"); err != nil || got != nil {
		t.Errorf("parseJumps(NONE) = %v, %v; want no jumps", got, err)
	}
	if _, err := parseJumps("a,,b"); err == nil {
		t.Error("empty jump in list accepted")
	}
}
