package pg

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func TestParseHistory(t *testing.T) {
	tests := []struct {
		in      string
		want    []HistoryEntry
		wantErr string
	}{
		{"", nil, ""},
		{"1\t0/3000000\tno recovery target specified\n", []HistoryEntry{{1, 0x3000000}}, ""},
		{"# comment\n\n1\t0/3000000\tx\n2\t0/5000060\tbefore 2025-03-14\n", []HistoryEntry{{1, 0x3000000}, {2, 0x5000060}}, ""},
		{"1\n", nil, "want a timeline and a switch point"},
		{"x\t0/1\n", nil, "is not a timeline"},
		{"0\t0/1\n", nil, "is not a timeline"},
		{"1\tnope\n", nil, "LSN"},
		{"2\t0/5\n1\t0/6\n", nil, "must increase"},
		{"1\t0/6\n2\t0/5\n", nil, "must increase"},
	}
	for _, tt := range tests {
		got, err := ParseHistory(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseHistory(%q) error %v, want one saying %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseHistory(%q): %v", tt.in, err)
		case tt.wantErr == "" && len(got) != len(tt.want):
			t.Errorf("ParseHistory(%q) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range tt.want {
			if tt.wantErr == "" && i < len(got) && got[i] != tt.want[i] {
				t.Errorf("ParseHistory(%q)[%d] = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

// FuzzParseHistory: a history file from a server is never trusted to be
// well formed; the parser returns entries that increase, or an error.
func FuzzParseHistory(f *testing.F) {
	f.Add("1\t0/3000000\tno recovery target specified\n2\t0/5000060\tx\n")
	f.Add("# c\n\n3\tFFFFFFFF/FFFFFFFF\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHistory(s)
		if err != nil {
			return
		}
		for i := 1; i < len(h); i++ {
			if h[i].Timeline <= h[i-1].Timeline || h[i].Switch < h[i-1].Switch {
				t.Fatalf("accepted a history that does not increase: %v", h)
			}
		}
	})
}

// TestAssessStandby judges standbys from synthetic readings: streaming
// under any name counts, only positive evidence is a reason to re-seed.
func TestAssessStandby(t *testing.T) {
	hist := []HistoryEntry{{1, 0x5000}}
	master := func(mod func(*Status)) *Status {
		m := &Status{Role: RoleMaster, SystemID: "7", Timeline: 2, CurrentLSN: 0x9000, Standbys: []Standby{
			{PID: 10, ApplicationName: "walreceiver", ClientAddr: "10.0.0.2", State: "streaming", LagBytes: 100},
			{PID: 11, ApplicationName: "pbx-b1", ClientAddr: "10.1.0.2", State: "streaming"},
		}}
		if mod != nil {
			mod(m)
		}
		return m
	}
	standby := func(mod func(*Status)) *Status {
		s := &Status{Role: RoleStandby, SystemID: "7", Timeline: 2, ReceiveLSN: 0x8f00, ReplayLSN: 0x8f00,
			Receiver: &Receiver{Status: "streaming", Timeline: 2, SenderHost: "10.0.0.1", SenderPort: 5432,
				ConnInfo: "user=replicator host=10.0.0.1 port=5432 fallback_application_name=walreceiver"}}
		if mod != nil {
			mod(s)
		}
		return s
	}
	addrs := []string{"10.0.0.2"}
	tests := []struct {
		name    string
		s, m    *Status
		histErr error
		addrs   []string
		check   func(Follow) string
	}{
		{"plain standby matched by name and address", standby(nil), master(nil), nil, addrs, func(f Follow) string {
			if !f.Streams() || f.AppName != "walreceiver" || f.Row.PID != 10 || f.MatchedBy != "application_name and client address" || f.Adopted("pbx-a2", "pbx_a2") || f.BytesBehind != 100 {
				return "want streaming, matched, not adopted"
			}
			return ""
		}},
		{"adopted", standby(func(s *Status) {
			s.Receiver.ConnInfo = "host=10.0.0.1 application_name=pbx-a2"
			s.Receiver.SlotName = "pbx_a2"
		}), master(func(m *Status) { m.Standbys[0].ApplicationName = "pbx-a2" }), nil, nil, func(f Follow) string {
			if !f.Adopted("pbx-a2", "pbx_a2") || f.MatchedBy != "application_name" {
				return "want adopted, matched by name"
			}
			return ""
		}},
		{"cluster_name is the name", standby(func(s *Status) { s.ClusterName = "main"; s.Receiver.ConnInfo = "host=x" }),
			master(func(m *Status) { m.Standbys[0].ApplicationName = "main"; m.Standbys[0].ClientAddr = "" }), nil, nil, func(f Follow) string {
				if f.AppName != "main" || !f.Streams() {
					return "want matched as main"
				}
				return ""
			}},
		{"catching up", standby(nil), master(func(m *Status) { m.Standbys[0].State = "catchup"; m.Standbys[0].LagBytes = 1 << 30 }), nil, addrs, func(f Follow) string {
			if !f.Streams() || !f.CatchingUp || f.Cannot != nil {
				return "want streaming and catching up, nothing to re-seed"
			}
			return ""
		}},
		{"another system", standby(func(s *Status) { s.SystemID = "8" }), master(nil), nil, addrs, func(f Follow) string {
			if f.Cannot == nil || f.Cannot.Reason != CannotOtherSystem || !f.Cannot.Automatic || f.Streams() {
				return "want other-system, automatic"
			}
			return ""
		}},
		{"on the old timeline before the fork", standby(func(s *Status) { s.Timeline, s.ReceiveLSN, s.ReplayLSN = 1, 0x4000, 0x4000 }), master(nil), nil, addrs, func(f Follow) string {
			if f.Cannot != nil {
				return "want it to follow onto the new timeline"
			}
			return ""
		}},
		{"past the fork", standby(func(s *Status) { s.Timeline, s.ReceiveLSN = 1, 0x6000 }), master(nil), nil, addrs, func(f Follow) string {
			if f.Cannot == nil || f.Cannot.Reason != CannotHistory || !f.Cannot.Automatic {
				return "want timeline-history, automatic"
			}
			return ""
		}},
		{"history unreadable", standby(func(s *Status) { s.Timeline, s.ReceiveLSN = 1, 0x6000 }), master(nil), errors.New("permission denied"), addrs, func(f Follow) string {
			if f.Cannot != nil || !strings.Contains(f.Note, "permission denied") {
				return "want no evidence, and a note"
			}
			return ""
		}},
		{"on a later timeline", standby(func(s *Status) { s.Timeline = 3 }), master(nil), nil, addrs, func(f Follow) string {
			if f.Cannot == nil || f.Cannot.Reason != CannotAhead || f.Cannot.Automatic {
				return "want ahead, not automatic"
			}
			return ""
		}},
		{"past the master's end", standby(func(s *Status) { s.ReceiveLSN = 0xA000 }), master(nil), nil, addrs, func(f Follow) string {
			if f.Cannot == nil || f.Cannot.Reason != CannotAhead || f.Cannot.Automatic {
				return "want ahead, not automatic"
			}
			return ""
		}},
		{"slot lost", standby(func(s *Status) { s.Receiver = nil }), master(func(m *Status) {
			m.Slots = []Slot{{Name: "pbx_a2", Type: "physical", WALStatus: "lost"}}
			m.Standbys = nil
		}), nil, addrs, func(f Follow) string {
			if f.Cannot == nil || f.Cannot.Reason != CannotWALRemoved {
				return "want wal-removed"
			}
			return ""
		}},
		{"receiver down", standby(func(s *Status) { s.Receiver = nil }), master(func(m *Status) { m.Standbys = nil }), nil, addrs, func(f Follow) string {
			if f.Cannot != nil || f.Streams() || !strings.Contains(f.Why, "not running") {
				return "want not streaming, no evidence, a reason"
			}
			return ""
		}},
		{"listed nowhere", standby(nil), master(func(m *Status) { m.Standbys = m.Standbys[1:] }), nil, addrs, func(f Follow) string {
			if f.Streams() || f.Cannot != nil || !strings.Contains(f.Why, "no upstream lists") {
				return "want not streaming, no evidence"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []HistoryEntry
			if tt.histErr == nil {
				h = hist
			}
			f := AssessStandby(tt.s, "pbx-a2", []Upstream{{Node: "pbx-a1", Status: tt.m}}, h, tt.histErr, tt.addrs)
			if why := tt.check(f); why != "" {
				t.Errorf("%s: %+v (cannot %+v)", why, f, f.Cannot)
			}
		})
	}
}

// TestAssessCascading finds a standby's row on the standby it cascades
// from: it streams, though the master does not list it.
func TestAssessCascading(t *testing.T) {
	m := &Status{Role: RoleMaster, SystemID: "7", Timeline: 1, CurrentLSN: 100}
	up := &Status{Role: RoleStandby, SystemID: "7", Timeline: 1, Standbys: []Standby{{ApplicationName: "pbx-b1", State: "streaming"}}}
	s := &Status{Role: RoleStandby, SystemID: "7", Timeline: 1, ReceiveLSN: 90, Receiver: &Receiver{Status: "streaming", ConnInfo: "application_name=pbx-b1"}}
	f := AssessStandby(s, "pbx-b1", []Upstream{{"pbx-a1", m}, {"pbx-a2", up}}, nil, nil, nil)
	if !f.Streams() || f.Upstream != "pbx-a2" || f.Adopted("pbx-b1", "") {
		t.Errorf("cascading standby: %+v", f)
	}
}

func TestCatchUpMeter(t *testing.T) {
	var m CatchUpMeter
	t0 := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	if c := m.Observe(t0, 1000, false); c != nil {
		t.Fatalf("not catching up: %+v", c)
	}
	c := m.Observe(t0, 1000, true)
	if c == nil || c.BytesBehind != 1000 || c.RateBytes != 0 || c.ETASeconds != nil || !c.Since.Equal(t0) {
		t.Fatalf("first reading: %+v", c)
	}
	c = m.Observe(t0.Add(2*time.Second), 800, true)
	if c.RateBytes != 100 || c.ETASeconds == nil || *c.ETASeconds != 8 {
		t.Fatalf("closing 100 B/s with 800 left: %+v", c)
	}
	c = m.Observe(t0.Add(4*time.Second), 900, true)
	if c.RateBytes != 25 {
		t.Fatalf("rate over the window: %+v", c)
	}
	c = m.Observe(t0.Add(60*time.Second), 1200, true)
	if c.RateBytes >= 0 || c.ETASeconds != nil {
		t.Fatalf("a growing gap has no estimate: %+v", c)
	}
	if c := m.Observe(t0.Add(61*time.Second), 0, false); c != nil {
		t.Fatal("caught up, still reported")
	}
	if c := m.Observe(t0.Add(62*time.Second), 10, true); !c.Since.Equal(t0.Add(62 * time.Second)) {
		t.Fatalf("a new catch-up starts afresh: %+v", c)
	}
}

// TestMasterSlotsView checks the master's slot rows and notices: the
// threshold by size and by share of the room, an unlimited keep size,
// a lost slot and a filling disk.
func TestMasterSlotsView(t *testing.T) {
	safe := int64(3 << 30)
	m := &Status{Role: RoleMaster, SystemID: "7", Timeline: 1, CurrentLSN: 1 << 40, MaxSlotWALKeepSize: -1,
		Standbys: []Standby{{PID: 42, ApplicationName: "pbx-b1", State: "streaming"}},
		Slots: []Slot{
			{Name: "pbx_a2", Type: "physical", RetainedBytes: 600 << 20, SafeWALSize: &safe},
			{Name: "geo", Type: "physical", Active: true, ActivePID: 42, RetainedBytes: 10 << 20},
			{Name: "pg_basebackup_1", Type: "physical", Temporary: true, RetainedBytes: 1 << 30},
			{Name: "old", Type: "physical", WALStatus: "lost"},
		}}
	policy := SlotPolicy{WarnBytes: 256 << 20, Nodes: map[string]string{"pbx_a2": "pbx-a2"}}
	disk := &protocol.Disk{Path: "/d/pg_wal", TotalBytes: 10 << 30, FreeBytes: 2 << 30, UsedPercent: 80}
	d := m.Database(View{Node: "pbx-a1", Slots: policy, WALDisk: disk})
	if len(d.Slots) != 3 {
		t.Fatalf("slots %+v, want 3 (the temporary one left out)", d.Slots)
	}
	byName := map[string]protocol.ReplicationSlot{}
	for _, s := range d.Slots {
		byName[s.Name] = s
	}
	if s := byName["pbx_a2"]; !s.Warning || s.Node != "pbx-a2" || s.Active || s.SafeBytes == nil {
		t.Errorf("pbx_a2: %+v", s)
	}
	if s := byName["geo"]; s.Warning || s.Node != "pbx-b1" {
		t.Errorf("geo (named by its walsender's application_name): %+v", s)
	}
	notices := map[string]protocol.Notice{}
	for _, n := range d.Notices {
		notices[strings.Fields(n.Message)[0]+" "+strings.Fields(n.Message)[1]] = n
	}
	for key, want := range map[string]struct {
		sev  protocol.Severity
		hint string
	}{
		"slot pbx_a2":               {protocol.SevWarning, "pg_drop_replication_slot('pbx_a2') on pbx-a1"},
		"slot old":                  {protocol.SevCritical, "re-seeded"},
		"max_slot_wal_keep_size is": {protocol.SevWarning, "[database]"},
		"pg_wal's file":             {protocol.SevCritical, "80 %"},
	} {
		n, ok := notices[key]
		if !ok || n.Severity != want.sev || !strings.Contains(n.Hint, want.hint) {
			t.Errorf("notice %q: %+v, want %s with a hint saying %q (all: %+v)", key, n, want.sev, want.hint, d.Notices)
		}
	}
	// By share: 25 % of the room (2 GiB free + 610 MiB held) is ~652 MiB.
	d = m.Database(View{Node: "pbx-a1", Slots: SlotPolicy{}, WALDisk: disk})
	for _, s := range d.Slots {
		if s.Warning {
			t.Errorf("slot %s warned below 25 %% of the room: %+v", s.Name, s)
		}
	}
	if got := (SlotPolicy{}).Threshold(disk, 610<<20); got != (2<<30+610<<20)/4 {
		t.Errorf("threshold %d", got)
	}
}

func TestAbsentView(t *testing.T) {
	seen := time.Date(2025, 3, 14, 11, 0, 0, 0, time.UTC)
	last := &Position{Node: "pbx-a2", SystemID: "7", Timeline: 1, LSN: 0x5000060}
	d := Absent{Node: "pbx-a2", SeenBy: "pbx-a1", Last: last, LastSeen: seen, Err: errors.New("connection refused"), Agent: "failed", AgentSince: seen}.Database()
	if d.Role != "down" || d.SeenBy != "pbx-a1" || d.LSN != "0/5000060" || d.Since == nil || !d.Since.Equal(seen) || len(d.Notices) != 1 ||
		!strings.Contains(d.Notices[0].Message, "connection refused") || !strings.Contains(d.Notices[0].Message, "its agent is failed") {
		t.Errorf("down peer: %+v", d)
	}
	d = Absent{Node: "pbx-a2", SeenBy: "pbx-a1", Err: errors.New("timeout")}.Database()
	if d.Role != "unknown" || d.Since != nil || !strings.Contains(d.Notices[0].Message, "never reached") {
		t.Errorf("never seen: %+v", d)
	}
	st := &Status{Role: RoleStandby, SystemID: "7", Timeline: 1, ReplayLSN: 10}
	d = Absent{Node: "pbx-a2", SeenBy: "pbx-a1", Status: st, Agent: "left"}.Database()
	if d.Role != "standby" || d.SeenBy != "pbx-a1" || !strings.Contains(d.Notices[0].Message, "read directly by pbx-a1") {
		t.Errorf("agent gone, server up: %+v", d)
	}
}

// FuzzDecodeAdoptRecord: a record left on disk is acted on only when it
// is whole and consistent.
func FuzzDecodeAdoptRecord(f *testing.F) {
	f.Add(`{"version":1,"node":"pbx-a2","master":"pbx-a1","started":"2025-03-14T12:00:00Z","old_conninfo":"host=a","old_conninfo_auto":true,"old_slot":"","old_slot_auto":false,"new_conninfo":"host=a application_name=pbx-a2","new_slot":"pbx_a2","slot_created":true}`)
	f.Add(`{"version":2}`)
	f.Add(`{"version":1,"node":"x","master":"y","new_slot":"s","extra":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := decodeAdoptRecord([]byte(s))
		if err == nil && (rec.Version != 1 || rec.Node == "" || rec.Master == "" || rec.NewSlot == "") {
			t.Fatalf("accepted an incomplete record: %+v", rec)
		}
	})
}
