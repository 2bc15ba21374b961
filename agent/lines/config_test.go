package lines_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hatui/hatui/agent/config"
)

// The [[switch]] tables are validated by agent/config; the cases live here,
// next to the feature that reads them.
func TestSwitchConfigErrorsNameFileKeyAndForm(t *testing.T) {
	base := "node = \"pbx-a1\"\nsite = \"a\"\n"
	bero := "driver = \"berofos\"\noptions = { address = \"192.0.2.7\" }\n"
	tests := []struct {
		name, data, key, expect string
	}{
		{"missing name", "[[switch]]\nkind = \"line\"\n" + bero, "switch[0].name", "letters"},
		{"bad kind", "[[switch]]\nname = \"l\"\nkind = \"relay\"\n" + bero, "switch[0].kind", `"line" or "power"`},
		{"unknown driver lists the known ones", "[[switch]]\nname = \"l\"\nkind = \"line\"\ndriver = \"berofoss\"\n", "switch[0].driver", "berofos, fence, iboot, rhino"},
		{"missing driver", "[[switch]]\nname = \"l\"\nkind = \"line\"\n", "switch[0].driver", "one of berofos"},
		{"misspelt option", "[[switch]]\nname = \"l\"\nkind = \"line\"\ndriver = \"berofos\"\noptions = { adress = \"192.0.2.7\" }\n", "switch[0].options", "address"},
		{"option not a string", "[[switch]]\nname = \"l\"\nkind = \"line\"\ndriver = \"berofos\"\noptions = { address = \"x\", http_port = 80 }\n", "", "TOML"},
		{"power driver as line switch", "[[switch]]\nname = \"p\"\nkind = \"line\"\ndriver = \"iboot\"\noptions = { address = \"192.0.2.8\", password = \"x\" }\n", "switch[0].driver", "line switch driver"},
		{"unknown position", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "positions = { pbx-a1 = \"A-C\" }\n", "switch[0].positions", "A-B, A-D"},
		{"follow without positions", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "follow = true\n", "switch[0].positions", "pbx-a1"},
		{"confirm out of range", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "confirm = -1\n", "switch[0].confirm", "1 to 100"},
		{"interval too short", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "interval = \"1ms\"\n", "switch[0].interval", "50ms"},
		{"outlets on a line switch", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "outlets = { \"0\" = \"pbx-a2\" }\n", "switch[0].outlets", "power"},
		{"follow on a power switch", "[[switch]]\nname = \"p\"\nkind = \"power\"\ndriver = \"iboot\"\noptions = { address = \"192.0.2.8\", password = \"x\" }\nfollow = true\n", "switch[0].follow", "line switches only"},
		{"outlet to a bad node name", "[[switch]]\nname = \"p\"\nkind = \"power\"\ndriver = \"iboot\"\noptions = { address = \"192.0.2.8\", password = \"x\" }\noutlets = { \"1\" = \"pbx a2\" }\n", "switch[0].outlets", "node"},
		{"duplicate name", "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero + "[[switch]]\nname = \"l\"\nkind = \"line\"\n" + bero, "switch[1].name", "one switch only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("/etc/ha-agent/node.toml", []byte(base+tt.data))
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *config.Error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "/etc/ha-agent/node.toml: ") {
				t.Errorf("message does not start with the file: %q", msg)
			}
			if tt.key != "" && ce.Key != tt.key {
				t.Errorf("key = %q, want %q (message %q)", ce.Key, tt.key, msg)
			}
			if !strings.Contains(msg, tt.expect) {
				t.Errorf("message %q does not mention %q", msg, tt.expect)
			}
		})
	}
}

func TestSwitchConfigValid(t *testing.T) {
	c, err := config.Parse("n.toml", []byte(`node = "pbx-a1"
site = "a"
[[switch]]
name = "lines-a"
kind = "line"
driver = "berofos"
options = { address = "192.0.2.7" }
positions = { pbx-a1 = "A-B", pbx-a2 = "A-D" }
follow = true
[[switch]]
name = "power-a2"
kind = "power"
driver = "iboot"
options = { address = "192.0.2.8", password = "x" }
outlets = { "1" = "pbx-a2" }
interval = "5s"
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Switches) != 2 || c.Switches[0].PollInterval() != config.DefaultSwitchInterval || c.Switches[1].PollInterval().String() != "5s" ||
		c.Switches[0].Positions["pbx-a2"] != "A-D" || c.Switches[1].Outlets["1"] != "pbx-a2" || c.Switches[0].DriverOptions()["address"] != "192.0.2.7" {
		t.Fatalf("switches read wrong: %+v", c.Switches)
	}
}
