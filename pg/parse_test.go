package pg

import (
	"os"
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    LSN
		wantErr bool
	}{
		{"0/0", 0, false},
		{"0/3000148", 0x3000148, false},
		{"16/B374D848", 0x16B374D848, false},
		{"FFFFFFFF/FFFFFFFF", 1<<64 - 1, false},
		{" 0/1 ", 1, false},
		{"", 0, true},
		{"0", 0, true},
		{"/1", 0, true},
		{"1/", 0, true},
		{"G/1", 0, true},
		{"100000000/0", 0, true},
		{"0/-1", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if back, _ := ParseLSN(got.String()); back != got {
				t.Errorf("%v does not survive String", got)
			}
		}
	}
}

func TestLSNSub(t *testing.T) {
	tests := []struct {
		a, b LSN
		want int64
	}{
		{100, 40, 60},
		{40, 100, 0}, // a standby a little past the master's flush is caught up
		{5, 5, 0},
		{1<<64 - 1, 0, 1<<63 - 1},
	}
	for _, tt := range tests {
		if got := tt.a.Sub(tt.b); got != tt.want {
			t.Errorf("%v.Sub(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/3000148", "16/B374D848", "0/0", "x/y", "", "FFFFFFFF/FFFFFFFF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		back, err := ParseLSN(l.String())
		if err != nil || back != l {
			t.Fatalf("%q -> %v -> %v, %v", s, l, back, err)
		}
	})
}

func TestParseConnInfo(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"host=10.0.0.1 port=5432 user=repl", map[string]string{"host": "10.0.0.1", "port": "5432", "user": "repl"}, false},
		{"password='it''s' user = 'a b'", nil, true}, // libpq escapes quotes with backslash, not doubling
		{`password='it\'s secret' user = 'a b'`, map[string]string{"password": "it's secret", "user": "a b"}, false},
		{`host=a\ b`, map[string]string{"host": "a b"}, false},
		{"", map[string]string{}, false},
		{"postgresql://repl:s%20ecret@db1:5433/app?sslmode=disable&application_name=x",
			map[string]string{"host": "db1", "port": "5433", "user": "repl", "password": "s ecret", "dbname": "app", "sslmode": "disable", "application_name": "x"}, false},
		{"host", nil, true},
		{"=x", nil, true},
		{"host='unterminated", nil, true},
		{"postgres://0?+", nil, true}, // found by FuzzConnInfo: a space is no keyword
		{"a'b=1", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseConnInfo(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseConnInfo(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q leaks a password", err)
			}
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("ParseConnInfo(%q) = %v, want %v", tt.in, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("ParseConnInfo(%q)[%s] = %q, want %q", tt.in, k, got[k], v)
			}
		}
	}
	ci, _ := ParseConnInfo("host=h password=pw")
	if r := ci.Redacted(); strings.Contains(r, "pw'") || !strings.Contains(r, "host='h'") {
		t.Errorf("Redacted() = %q", r)
	}
	if ci.With("application_name", "pbx-a2")["application_name"] != "pbx-a2" || ci["application_name"] != "" {
		t.Error("With must copy, not modify")
	}
}

func FuzzConnInfo(f *testing.F) {
	for _, s := range []string{"host=10.0.0.1 port=5432 user=repl", `password='it\'s' x=y`, "postgres://u:p@h:1/d?a=b", `a=\\`, "a='' b=''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ci, err := ParseConnInfo(s)
		if err != nil {
			return
		}
		back, err := ParseConnInfo(ci.String())
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", s, ci.String(), err)
		}
		if len(back) != len(ci) {
			t.Fatalf("%q -> %v -> %v", s, ci, back)
		}
		for k, v := range ci {
			if back[k] != v {
				t.Fatalf("%q: %s=%q came back as %q", s, k, v, back[k])
			}
		}
	})
}

func TestParseControlData(t *testing.T) {
	tests := []struct {
		file        string
		state       string
		wasStandby  bool
		timeline    uint32
		position    LSN
		checkpoint  LSN
		minRecovery LSN
	}{
		{"controldata-master-running.txt", "in production", false, 1, 0x4000060, 0x4000060, 0},
		{"controldata-master-stopped.txt", "shut down", false, 1, 0x7025A50, 0x7025A50, 0},
		{"controldata-standby-stopped.txt", "shut down in recovery", true, 1, 0x7025A50, 0x6000060, 0x7025A50},
	}
	for _, tt := range tests {
		b, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		cd, err := ParseControlData(string(b))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		tl, pos := cd.Position()
		if cd.State != tt.state || cd.WasStandby() != tt.wasStandby || tl != tt.timeline || pos != tt.position ||
			cd.CheckpointLSN != tt.checkpoint || cd.MinRecoveryLSN != tt.minRecovery || cd.SystemID == "" || cd.CheckpointTime.IsZero() {
			t.Errorf("%s: %+v (timeline %d at %v)", tt.file, cd, tl, pos)
		}
	}
	for _, bad := range []string{"", "Database cluster state: in production\n", "Latest checkpoint location: zz\nDatabase system identifier: 1\n"} {
		if _, err := ParseControlData(bad); err == nil {
			t.Errorf("ParseControlData(%q) accepted", bad)
		}
	}
}

func FuzzParseControlData(f *testing.F) {
	for _, name := range []string{"controldata-master-running.txt", "controldata-master-stopped.txt", "controldata-standby-stopped.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		cd, err := ParseControlData(s)
		if err != nil {
			return
		}
		if cd.SystemID == "" {
			t.Fatalf("accepted without a system identifier: %+v", cd)
		}
		cd.Position()
	})
}

func TestParseProgress(t *testing.T) {
	tests := []struct {
		line string
		ok   bool
		want copyProgress
	}{
		{" 8195/38445 kB (21%), 0/1 tablespace (/tmp/pgm/bb/base/5/16396           )", true, copyProgress{8195, 38445, 21}},
		{"38455/38455 kB (100%), 1/1 tablespace                                         ", true, copyProgress{38455, 38455, 100}},
		{"16387/38445 kB (42%), 0/1 tablespace", true, copyProgress{16387, 38445, 42}},
		{"1200 kB (?%), 0/1 tablespace", true, copyProgress{1200, 0, 0}},
		{"pg_basebackup: checkpoint completed", false, copyProgress{}},
		{"pg_basebackup: write-ahead log start point: 0/3000028 on timeline 1", false, copyProgress{}},
		{"-5/10 kB (1%)", false, copyProgress{}},
		{"5/10 kB (900%)", true, copyProgress{5, 10, 50}},
	}
	for _, tt := range tests {
		got, ok := parseProgress(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseProgress(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestScanProgress(t *testing.T) {
	in := "pg_basebackup: initiating base backup\n 100/400 kB (25%), 0/1 tablespace\r 200/400 kB (50%), 0/1 tablespace\r400/400 kB (100%), 1/1 tablespace\npg_basebackup: error: boom"
	var pct []float64
	var lines []string
	scanProgress(strings.NewReader(in), func(p copyProgress) { pct = append(pct, p.Percent) }, func(l string) { lines = append(lines, l) })
	if len(pct) != 3 || pct[0] != 25 || pct[2] != 100 {
		t.Errorf("percentages %v", pct)
	}
	if len(lines) != 2 || lines[1] != "pg_basebackup: error: boom" {
		t.Errorf("other lines %q", lines)
	}
}

func FuzzParseProgress(f *testing.F) {
	for _, s := range []string{" 8195/38445 kB (21%), 0/1 tablespace (/x/base/5/16396 )", "38455/38455 kB (100%), 1/1 tablespace", "1200 kB", "pg_basebackup: error"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseProgress(s)
		if ok && (p.Percent < 0 || p.Percent > 100 || p.DoneKB < 0 || p.TotalKB < 0) {
			t.Fatalf("%q -> %+v", s, p)
		}
	})
}
