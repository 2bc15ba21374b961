package berofos

import (
	"os"
	"strings"
	"testing"

	"github.com/hatui/hatui/switchdrv"
)

func TestParseConfMapTestdata(t *testing.T) {
	page, err := os.ReadFile("testdata/config.txt")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfMap(page)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if c.Version != "0.1" {
		t.Errorf("version = %q", c.Version)
	}
	st, err := lineState(c)
	if err != nil {
		t.Fatalf("line state: %v", err)
	}
	if st.Position != PositionAB || !st.Verified || st.Watchdog != switchdrv.WatchdogOn {
		t.Errorf("line state = %+v, want A-B verified watchdog on", st)
	}
	for _, tc := range []struct {
		group int
		key   string
		want  bool
	}{
		{GroupNetwork, "pwd", true},   // "checked"
		{GroupNetwork, "dhcp", false}, // empty
		{GroupSystem, "wen", true},    // "checked"
		{GroupPower, "p0", true},
		{GroupPower, "p1", false},
	} {
		got, ok := c.Bool(tc.group, tc.key)
		if !ok || got != tc.want {
			t.Errorf("Bool(%d, %s) = %v, %v; want %v", tc.group, tc.key, got, ok, tc.want)
		}
	}
	if g := c.Group(GroupNetwork); g["pwd"] != "1" || g["dhcp"] != "0" || g["ip"] != "192.0.2.50" {
		t.Errorf("group 3 normalised = %v", g)
	}
}

func TestParseConfMapRejects(t *testing.T) {
	for _, tc := range []struct {
		name, page, want string
	}{
		{"empty", "", "empty"},
		{"login page", "<html><body>Login</body></html>\n", "does not start with"},
		{"magic not first", "4_mode=1\nbnfos_confmap_magic=0.1\n", "does not start with"},
		{"huge", strings.Repeat("x", maxConfigBytes+1), "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfMap([]byte(tc.page))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseConfMapSkipsOddLines(t *testing.T) {
	c, err := ParseConfMap([]byte("\r\nbnfos_confmap_magic=0.1\r\ngarbage\r\nx_y=1\r\n_mode=1\r\n4_=2\r\n4_mode=checked\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Values) != 1 || c.Values["4_mode"] != "checked" {
		t.Fatalf("values = %v, want only 4_mode", c.Values)
	}
	st, err := lineState(c)
	if err != nil || st.Position != PositionAB {
		t.Fatalf("line state = %+v, %v", st, err)
	}
	if st.Watchdog != switchdrv.WatchdogUnknown {
		t.Fatalf("watchdog = %q, want unknown when the page has no group 6", st.Watchdog)
	}
}

func TestWriteQueryWritesWholeGroup(t *testing.T) {
	c, err := ParseConfMap([]byte("bnfos_confmap_magic=0.1\n1_sz=0\n1_rm=checked\n1_p0=1\n1_p1=\n4_mode=0\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := WriteQuery(GroupConfig, c.Group(GroupConfig), map[string]string{"sz": "1"})
	want := "cmd=1&p0=1&p1=0&rm=1&sz=1"
	if got != want {
		t.Fatalf("WriteQuery = %q, want %q", got, want)
	}
	if got := WriteQuery(GroupNetwork, nil, map[string]string{"apwd": "a&b=c"}); got != "cmd=3&apwd=a%26b%3Dc" {
		t.Fatalf("escaping: %q", got)
	}
}

func FuzzParseConfMap(f *testing.F) {
	page, err := os.ReadFile("testdata/config.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(page)
	f.Add([]byte("bnfos_confmap_magic=0.1\n4_mode=checked\n6_wstate=2\n"))
	f.Add([]byte("<html>401</html>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfMap(b)
		if err != nil {
			return
		}
		for k := range c.Values {
			if !strings.Contains(k, "_") {
				t.Fatalf("key %q without group", k)
			}
		}
		if st, err := lineState(c); err == nil && st.Position != PositionAB && st.Position != PositionAD {
			t.Fatalf("position %q", st.Position)
		}
		for g := range 7 {
			// Writing back what was read must not lose a key.
			if q := WriteQuery(g, c.Group(g), nil); !strings.HasPrefix(q, "cmd=") {
				t.Fatalf("query %q", q)
			}
		}
		_, _ = powerState(c, "0")
	})
}
