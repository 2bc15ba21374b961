package geo

import (
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

func validConfig() Config {
	return Config{
		Node: "pbx-a1", Site: "a", InitialHolder: "a",
		Voters: []Voter{
			{Node: "pbx-a1", Site: "a", Addr: "10.0.1.1:7946"},
			{Node: "pbx-b1", Site: "b", Addr: "10.0.2.1:7946"},
			{Node: "arb1", Site: "arb", Addr: "10.0.3.1:7946", Arbitrator: true},
		},
	}.WithDefaults()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		code   protocol.Code // "" for valid
		msg    string
	}{
		{"valid", func(*Config) {}, "", ""},
		{"manual mode without arbitrator", func(c *Config) {
			c.Mode = ModeManual
			c.Voters = c.Voters[:2]
		}, "", ""},
		{"two voters and no arbitrator in auto mode", func(c *Config) { c.Voters = c.Voters[:2] }, protocol.CodeRefused, "two voters and no arbitrator"},
		{"two sites of two voters without arbitrator", func(c *Config) {
			c.Voters = []Voter{
				{Node: "pbx-a1", Site: "a", Addr: "x1"}, {Node: "pbx-a2", Site: "a", Addr: "x2"},
				{Node: "pbx-b1", Site: "b", Addr: "x3"}, {Node: "pbx-b2", Site: "b", Addr: "x4"},
			}
		}, protocol.CodeRefused, "losing site \"a\" (2 of 4 votes) leaves no majority"},
		{"unbalanced sites", func(c *Config) {
			c.Voters = append(c.Voters, Voter{Node: "pbx-a2", Site: "a", Addr: "10.0.1.2:7946"})
		}, protocol.CodeRefused, "site \"a\" has 2 of 4 votes"},
		{"balanced sites", func(c *Config) {
			c.Voters = append(c.Voters, Voter{Node: "pbx-a2", Site: "a", Addr: "10.0.1.2:7946"}, Voter{Node: "pbx-b2", Site: "b", Addr: "10.0.2.2:7946"})
		}, "", ""},
		{"one site", func(c *Config) {
			c.Mode = ModeManual
			c.Voters = []Voter{c.Voters[0], {Node: "arb1", Site: "arb", Addr: "y", Arbitrator: true}}
		}, protocol.CodeUsage, "at least two service sites"},
		{"no voters", func(c *Config) { c.Voters = nil }, protocol.CodeUsage, "no voters"},
		{"this node not a voter", func(c *Config) { c.Node = "pbx-a9" }, protocol.CodeUsage, "is not among the voters"},
		{"this node in another site", func(c *Config) { c.Site = "b" }, protocol.CodeUsage, "its voter entry says"},
		{"duplicate voter", func(c *Config) { c.Voters = append(c.Voters, c.Voters[1]) }, protocol.CodeUsage, "listed twice"},
		{"duplicate address", func(c *Config) { c.Voters[1].Addr = c.Voters[0].Addr }, protocol.CodeUsage, "given to two voters"},
		{"missing address", func(c *Config) { c.Voters[1].Addr = "" }, protocol.CodeUsage, "has no addr"},
		{"mixed arbitrator site", func(c *Config) {
			c.Voters = append(c.Voters, Voter{Node: "arb2", Site: "arb", Addr: "z"})
		}, protocol.CodeUsage, "both arbitrator and non-arbitrator"},
		{"bad name", func(c *Config) { c.Site = "site a" }, protocol.CodeUsage, "not a valid name"},
		{"bad mode", func(c *Config) { c.Mode = "sometimes" }, protocol.CodeUsage, "mode \"sometimes\""},
		{"initial holder unknown", func(c *Config) { c.InitialHolder = "c" }, protocol.CodeUsage, "initial_holder \"c\" is not a site"},
		{"initial holder arbitrator", func(c *Config) { c.InitialHolder = "arb" }, protocol.CodeUsage, "never holds the ticket"},
		{"renewal not shorter than lease", func(c *Config) { c.Renewal = c.Lease }, protocol.CodeUsage, "must be shorter than the lease"},
		{"negative acquire-after", func(c *Config) { c.AcquireAfter = -time.Second }, protocol.CodeUsage, "acquire_after must not be negative"},
		{"margin not shorter than dead man", func(c *Config) { c.SafetyMargin = c.DeadMan }, protocol.CodeUsage, "safety_margin"},
		{"negative dead man", func(c *Config) { c.DeadMan = -time.Hour }, protocol.CodeUsage, "dead_man must be positive"},
		{"history out of range", func(c *Config) { c.History = 100000 }, protocol.CodeUsage, "history must be between"},
		{"empty hook", func(c *Config) { c.BeforeAcquire = []string{""} }, protocol.CodeUsage, "names no program"},
		{"raft timings", func(c *Config) { c.Raft.LeaderLeaseTimeout = 2 * c.Raft.HeartbeatTimeout }, protocol.CodeUsage, "raft timings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.code == "" {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid config accepted, want %s %q", tc.code, tc.msg)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			found := false
			for _, e := range unjoin(err) {
				pe, ok := e.(*protocol.Error)
				if !ok {
					t.Errorf("untyped error %T: %v", e, e)
					continue
				}
				if pe.Hint == "" {
					t.Errorf("error without a hint: %v", pe)
				}
				found = found || (pe.Code == tc.code && strings.Contains(pe.Message, tc.msg))
			}
			if !found {
				t.Errorf("no %s error saying %q in %v", tc.code, tc.msg, err)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.DeadMan != 2*time.Hour || c.Mode != ModeAuto || c.Ticket != "geo" || c.Renewal != c.Lease/3 {
		t.Errorf("defaults: %+v", c)
	}
}
