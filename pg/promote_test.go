package pg

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCheckPromote(t *testing.T) {
	self := Position{Node: "pbx-a2", SystemID: "7", Timeline: 1, LSN: 1000, Running: true, Standby: true}
	ahead := Position{Node: "pbx-b1", SystemID: "7", Timeline: 1, LSN: 2000}
	behind := Position{Node: "pbx-b1", SystemID: "7", Timeline: 1, LSN: 500}
	otherCluster := Position{Node: "x", SystemID: "8", Timeline: 9, LSN: 99999}
	gone := func(context.Context) (bool, string, error) { return true, "outlet 3 is off", nil }
	alive := func(context.Context) (bool, string, error) { return false, "pbx-a1 answers", nil }
	broken := func(context.Context) (bool, string, error) { return true, "", errors.New("switch unreachable") }
	tests := []struct {
		name string
		self Position
		geo  bool
		req  PromoteRequest
		want Reason
	}{
		{"fresh, fenced", self, false, PromoteRequest{Peers: []Position{behind}, OldMasterGone: true}, ""},
		{"fence check says gone", self, false, PromoteRequest{CheckOldMaster: gone}, ""},
		{"fence check says alive", self, false, PromoteRequest{CheckOldMaster: alive}, ReasonMasterNotFenced},
		{"fence check fails", self, false, PromoteRequest{CheckOldMaster: broken}, ReasonMasterNotFenced},
		{"no fence information", self, false, PromoteRequest{}, ReasonMasterNotFenced},
		{"a peer is fresher", self, false, PromoteRequest{Peers: []Position{ahead}, OldMasterGone: true}, ReasonNotFreshest},
		{"a peer on a later timeline", self, false, PromoteRequest{Peers: []Position{{Node: "p", SystemID: "7", Timeline: 2, LSN: 1}}, OldMasterGone: true}, ReasonNotFreshest},
		{"another cluster is no rival", self, false, PromoteRequest{Peers: []Position{otherCluster}, OldMasterGone: true}, ""},
		{"equal peer", self, false, PromoteRequest{Peers: []Position{{Node: "p", SystemID: "7", Timeline: 1, LSN: 1000}}, OldMasterGone: true}, ""},
		{"too far behind the old master", self, false, PromoteRequest{OldMasterGone: true, LastMasterLSN: 5000, MaxLagBytes: 1000}, ReasonLagTooHigh},
		{"within the lag limit", self, false, PromoteRequest{OldMasterGone: true, LastMasterLSN: 1500, MaxLagBytes: 1000}, ""},
		{"geo", self, true, PromoteRequest{OldMasterGone: true}, ReasonGeoStandby},
		{"geo forced", self, true, PromoteRequest{Force: true}, ""},
		{"forced past freshness", self, false, PromoteRequest{Force: true, Peers: []Position{ahead}}, ""},
		{"already master", Position{Node: "pbx-a1", Running: true}, false, PromoteRequest{Force: true}, ReasonNotStandby},
		{"stopped standby", Position{Node: "pbx-a2", SystemID: "7", Timeline: 1, LSN: 1000, Standby: true}, false, PromoteRequest{OldMasterGone: true}, ""},
		{"stopped master can be started as master", Position{Node: "pbx-a1", SystemID: "7", Timeline: 1, LSN: 1000}, false, PromoteRequest{OldMasterGone: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPromote(context.Background(), tt.self, tt.self.Node, tt.geo, tt.req)
			if got := RefusalReason(err); got != tt.want || (tt.want == "" && err != nil) {
				t.Fatalf("got %v, want reason %q", err, tt.want)
			}
			var r *RefusedError
			if errors.As(err, &r) && (r.Hint == "" || r.Message == "") {
				t.Errorf("refusal without message or hint: %+v", r)
			}
		})
	}
}

func TestWithoutBackups(t *testing.T) {
	rows := []Standby{
		{PID: 1, ApplicationName: "pbx-a2", ClientAddr: "10.0.0.2", State: "streaming", ReplayLSN: 100},
		{PID: 2, ApplicationName: "pbx-a2", ClientAddr: "10.0.0.2", State: "backup"},
		{PID: 3, ApplicationName: "pbx-a2", ClientAddr: "10.0.0.2", State: "streaming"}, // the backup's WAL stream
		{PID: 4, ApplicationName: "pbx-b1", ClientAddr: "10.1.0.2", State: "streaming", ReplayLSN: 90},
		{PID: 5, ApplicationName: "archiver", ClientAddr: "10.0.0.9", State: "streaming"}, // pg_receivewal: kept
	}
	got := withoutBackups(rows)
	var pids []int
	for _, r := range got {
		pids = append(pids, r.PID)
	}
	if len(pids) != 3 || pids[0] != 1 || pids[1] != 4 || pids[2] != 5 {
		t.Errorf("kept %v, want [1 4 5]", pids)
	}
}

func TestDatabaseView(t *testing.T) {
	lag := 2 * time.Second
	master := &Status{Role: RoleMaster, Timeline: 3, SystemID: "7", CurrentLSN: 5000, Standbys: []Standby{
		{ApplicationName: "pbx-b1", State: "streaming", LagBytes: 1200, ReplayLag: &lag},
	}}
	standby := &Status{Role: RoleStandby, Timeline: 3, SystemID: "7", ReceiveLSN: 4500, ReplayLSN: 3800,
		Receiver: &Receiver{Status: "streaming", SenderHost: "10.0.0.1", SenderPort: 5432, SlotName: "pbx_b1", Timeline: 3}}

	d := standby.Database(View{Node: "pbx-b1", Geo: true, Master: master})
	if d.Role != "geo-standby" || d.LagBytes != 1200 || d.LagSeconds == nil || *d.LagSeconds != 2 ||
		d.Upstream != "10.0.0.1:5432" || !d.Streaming || d.Slot != "pbx_b1" || d.LSN != "0/ED8" || !d.Healthy {
		t.Errorf("geo standby with the master's view: %+v", d)
	}
	d = standby.Database(View{Node: "pbx-a2", Health: &Health{OK: false, Detail: "health query did not answer"}})
	if d.Role != "standby" || d.LagBytes != 700 || d.Healthy || d.Health == "" {
		t.Errorf("standby on its own view: %+v", d)
	}
	d = master.Database(View{Node: "pbx-a1"})
	if d.Role != "master" || d.LSN != "0/1388" || d.Timeline != 3 || d.LagSeconds != nil {
		t.Errorf("master: %+v", d)
	}
	d = DownDatabase(View{Node: "pbx-a3"}, errors.New("connection refused"))
	if d.Role != "down" || d.Healthy || d.Health != "connection refused" {
		t.Errorf("down: %+v", d)
	}
}

func TestSlotName(t *testing.T) {
	for in, want := range map[string]string{"pbx-a2": "pbx_a2", "PBX.B1": "pbx_b1", "--": "standby", "ok_1": "ok_1"} {
		if got := SlotName(in); got != want {
			t.Errorf("SlotName(%q) = %q, want %q", in, got, want)
		}
	}
}
