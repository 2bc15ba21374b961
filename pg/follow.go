package pg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CannotReason names why a standby's data cannot stream from the master.
type CannotReason string

// Reasons a standby's data cannot stream. They are stable strings.
const (
	// CannotOtherSystem: the data belongs to another database cluster.
	CannotOtherSystem CannotReason = "other-system"
	// CannotHistory: the data's timeline history is not the master's
	// (it was promoted, or went on past the point where the master's
	// timeline forked).
	CannotHistory CannotReason = "timeline-history"
	// CannotAhead: the data holds WAL on the master's own timeline that
	// the master never had. Never re-seeded without an operator.
	CannotAhead CannotReason = "ahead"
	// CannotWALRemoved: the master no longer has WAL the standby needs
	// (its replication slot was invalidated by max_slot_wal_keep_size).
	CannotWALRemoved CannotReason = "wal-removed"
	// CannotNoData: there is no data directory.
	CannotNoData CannotReason = "no-data"
	// CannotUnreadable: the data directory cannot be read
	// (pg_controldata fails on it).
	CannotUnreadable CannotReason = "unreadable"
)

// Cannot says that a standby's data cannot stream from the master, and
// why. It is the only ground on which the agent re-seeds by itself: a
// standby under another name, one without a slot, one catching up or one
// whose receiver is merely not connected is never replaced.
type Cannot struct {
	Reason CannotReason
	Why    string
	// Automatic says a re-seed may start without an operator (when the
	// configuration allows it). It is false when the local data holds
	// WAL the master lacks on the master's own timeline: discarding that
	// is an operator's decision, taken with force.
	Automatic bool
}

func (c *Cannot) String() string { return c.Why }

// checkData decides whether data at position local can follow the master
// ms, whose timeline's ancestors are hist (histErr when they could not be
// read). Only positive evidence counts: when the history cannot be read,
// the data is taken to be able to follow, and note says so.
func checkData(local Position, ms *Status, hist []HistoryEntry, histErr error) (c *Cannot, note string) {
	if local.SystemID != ms.SystemID {
		return &Cannot{Reason: CannotOtherSystem, Automatic: true,
			Why: fmt.Sprintf("its data is another database cluster (system identifier %s, the master's %s)", local.SystemID, ms.SystemID)}, ""
	}
	if local.Timeline < ms.Timeline && histErr != nil {
		return nil, fmt.Sprintf("could not read the master's timeline history (%v): assumed it can follow", histErr)
	}
	ok, ahead, why := onHistory(local, ms.Timeline, ms.CurrentLSN, hist)
	switch {
	case ok:
		return nil, ""
	case ahead:
		return &Cannot{Reason: CannotAhead, Why: why}, ""
	}
	return &Cannot{Reason: CannotHistory, Automatic: true, Why: why}, ""
}

// Upstream is a server a standby may stream from, as just read: the
// master, or another standby it cascades from.
type Upstream struct {
	Node   string
	Status *Status
}

// Follow is how a running standby follows the master.
type Follow struct {
	Master string
	// Cannot is set when its data cannot stream from the master.
	Cannot *Cannot
	// Receiving says its WAL receiver is streaming.
	Receiving bool
	// Row is its pg_stat_replication row on Upstream, found by
	// application_name or client address; nil when no upstream lists it.
	Row       *Standby
	Upstream  string
	MatchedBy string
	// AppName is the application_name its upstream sees, and Slot the
	// slot its receiver uses ("" for none).
	AppName string
	Slot    string
	// BytesBehind is the master's WAL it has not replayed.
	BytesBehind int64
	// CatchingUp says it streams but replays a backlog.
	CatchingUp bool
	// Why says what is known when it neither streams nor Cannot.
	Why string
	// Note is what could not be checked (the master's history).
	Note string
}

// Streams reports whether the standby streams (a catching-up standby
// streams).
func (f Follow) Streams() bool { return f.Cannot == nil && f.Receiving && f.Row != nil }

// Adopted reports whether it streams from the master under the node's
// name, using slot.
func (f Follow) Adopted(node, slot string) bool {
	return f.Streams() && f.Upstream == f.Master && f.AppName == node && f.Slot == slot
}

// CatchUpBytes is how far behind a streaming standby counts as catching
// up even when the master calls it streaming.
const CatchUpBytes = 16 << 20

// AssessStandby says how the running standby s of node follows the master
// (ups[0], which must be the master; the others are standbys it may
// cascade from). hist and histErr are the master timeline's ancestors;
// addrs are the addresses s connects from, to match client_addr.
func AssessStandby(s *Status, node string, ups []Upstream, hist []HistoryEntry, histErr error, addrs []string) Follow {
	m := ups[0].Status
	f := Follow{Master: ups[0].Node, AppName: receiverAppName(s)}
	if r := s.Receiver; r != nil {
		f.Receiving = r.Status == "streaming"
		f.Slot = r.SlotName
	}
	pos := Position{Node: node, SystemID: s.SystemID, Timeline: s.Timeline, LSN: max(s.ReceiveLSN, s.ReplayLSN), Standby: true}
	f.Cannot, f.Note = checkData(pos, m, hist, histErr)
	f.BytesBehind = m.CurrentLSN.Sub(s.ReplayLSN)
	for _, up := range ups {
		if up.Status == nil {
			continue
		}
		if row, by, ok := matchRow(up.Status.Standbys, node, f.AppName, addrs); ok {
			f.Row, f.MatchedBy, f.Upstream = &row, by, up.Node
			if up.Node == f.Master {
				f.BytesBehind = row.LagBytes
			}
			break
		}
	}
	if f.Cannot == nil && !f.Receiving {
		for _, sl := range m.Slots {
			if sl.WALStatus == "lost" && (sl.Name == f.Slot || sl.Name == SlotName(node)) {
				f.Cannot = &Cannot{Reason: CannotWALRemoved, Automatic: true,
					Why: fmt.Sprintf("the master removed WAL it still needs: its replication slot %q was invalidated (max_slot_wal_keep_size)", sl.Name)}
			}
		}
	}
	if f.Streams() {
		f.CatchingUp = f.Row.State == "catchup" || f.BytesBehind > CatchUpBytes
		return f
	}
	switch r := s.Receiver; {
	case f.Cannot != nil:
	case r == nil:
		f.Why = "its WAL receiver is not running: primary_conninfo is empty, or it cannot connect (see its server log)"
	case r.Status != "streaming":
		f.Why = "its WAL receiver is " + r.Status
	default:
		f.Why = fmt.Sprintf("its WAL receiver streams from %s, but no upstream lists a connection named %q or from its address", net.JoinHostPort(r.SenderHost, strconv.Itoa(r.SenderPort)), f.AppName)
	}
	return f
}

// receiverAppName is the application_name a standby's WAL receiver
// connects with: primary_conninfo's, else cluster_name, else
// "walreceiver", as PostgreSQL chooses it.
func receiverAppName(s *Status) string {
	if s.Receiver != nil {
		if ci, err := ParseConnInfo(s.Receiver.ConnInfo); err == nil && ci["application_name"] != "" {
			return ci["application_name"]
		}
	}
	if s.ClusterName != "" {
		return s.ClusterName
	}
	return "walreceiver"
}

// matchRow finds a standby's row among an upstream's pg_stat_replication
// rows: by the node's own name; else by its application_name from one of
// its addresses; else by the address alone, or the name alone, when that
// picks out one row. A streaming row is preferred among equals.
func matchRow(rows []Standby, node, appName string, addrs []string) (Standby, string, bool) {
	pick := func(keep func(Standby) bool, unique bool) (Standby, bool) {
		var found []Standby
		for _, r := range rows {
			if keep(r) {
				found = append(found, r)
			}
		}
		if len(found) == 0 || (unique && len(found) > 1) {
			return Standby{}, false
		}
		for _, r := range found {
			if r.State == "streaming" {
				return r, true
			}
		}
		return found[0], true
	}
	fromHere := func(r Standby) bool { return slices.Contains(addrs, r.ClientAddr) }
	if r, ok := pick(func(r Standby) bool { return r.ApplicationName == node }, false); ok {
		return r, "application_name", true
	}
	if r, ok := pick(func(r Standby) bool { return r.ApplicationName == appName && fromHere(r) }, false); ok {
		return r, "application_name and client address", true
	}
	if r, ok := pick(fromHere, true); ok {
		return r, "client address", true
	}
	if r, ok := pick(func(r Standby) bool { return r.ApplicationName == appName }, true); ok {
		return r, "application_name", true
	}
	return Standby{}, "", false
}

// SourceAddrs returns the addresses a standby's WAL receiver connects
// from when it reaches host:port, as the upstream's client_addr shows
// them: the local address the kernel routes from, or "" for a Unix
// socket (no client address).
func SourceAddrs(host string, port int) []string {
	if host == "" || strings.HasPrefix(host, "/") {
		return []string{""}
	}
	d := net.Dialer{Timeout: time.Second}
	// A UDP "connection" sends nothing: it only asks the kernel for the
	// route, and so for the source address.
	c, err := d.Dial("udp", net.JoinHostPort(host, strconv.Itoa(max(port, 1))))
	if err != nil {
		return nil
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return []string{a.IP.String()}
	}
	return nil
}

// ReceiverAddrs is SourceAddrs for the standby's current WAL receiver.
func (s *Status) ReceiverAddrs() []string {
	if s.Receiver == nil {
		return nil
	}
	return SourceAddrs(s.Receiver.SenderHost, s.Receiver.SenderPort)
}

// AssessStopped says whether the stopped local data can follow the master
// ms: nil when it can (or when it cannot be told). It reads the control
// file and the master's timeline history; it changes nothing.
func (in *Instance) AssessStopped(ctx context.Context, master Peer, ms *Status) (*Cannot, string, error) {
	had, err := in.hasData()
	if err != nil {
		return &Cannot{Reason: CannotUnreadable, Automatic: true, Why: err.Error()}, "", nil
	}
	if !had {
		return &Cannot{Reason: CannotNoData, Automatic: true, Why: "there is no data directory at " + in.DataDir}, "", nil
	}
	cd, err := in.ControlData(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return &Cannot{Reason: CannotUnreadable, Automatic: true, Why: "its data directory cannot be read: " + err.Error()}, "", nil
	}
	if fileGone(filepath.Join(in.DataDir, "postgresql.auto.conf")) && fileGone(filepath.Join(in.DataDir, "postgresql.conf")) {
		return &Cannot{Reason: CannotUnreadable, Automatic: true, Why: "its data directory has no configuration (postgresql.conf)"}, "", nil
	}
	tl, lsn := cd.Position()
	pos := Position{Node: in.Node, SystemID: cd.SystemID, Timeline: tl, LSN: lsn, Standby: cd.WasStandby()}
	var hist []HistoryEntry
	var histErr error
	if pos.SystemID == ms.SystemID && tl < ms.Timeline {
		hist, histErr = ReadHistory(ctx, master.ConnInfo, ms.Timeline)
	}
	c, note := checkData(pos, ms, hist, histErr)
	return c, note, nil
}

// masterHistory reads the master's timeline history when a standby on
// timeline tl needs it to be judged; none is needed on the same timeline.
func masterHistory(ctx context.Context, master Peer, ms *Status, tl uint32) ([]HistoryEntry, error) {
	if tl >= ms.Timeline {
		return nil, nil
	}
	return ReadHistory(ctx, master.ConnInfo, ms.Timeline)
}

// Assess reads how the running standby follows the master among peers:
// its own status, the master's and the other standbys' (for cascading),
// and the master's timeline history when needed. It changes nothing.
func (in *Instance) Assess(ctx context.Context, s *Status, master Peer, peers []PeerStatus) (Follow, error) {
	ups := []Upstream{}
	for _, ps := range peers {
		if ps.Peer.Node == master.Node && ps.Status != nil {
			ups = append([]Upstream{{Node: ps.Peer.Node, Status: ps.Status}}, ups...)
		} else if ps.Status != nil && ps.Status.Role == RoleStandby {
			ups = append(ups, Upstream{Node: ps.Peer.Node, Status: ps.Status})
		}
	}
	if len(ups) == 0 || ups[0].Node != master.Node {
		return Follow{}, errors.New("assessing " + in.Node + ": the master's status is not known")
	}
	addrs := s.ReceiverAddrs()
	s, tlErr := in.withReplayTimeline(s)
	hist, histErr := masterHistory(ctx, master, ups[0].Status, s.Timeline)
	if tlErr != nil && s.Timeline < ups[0].Status.Timeline {
		histErr = tlErr
	}
	return AssessStandby(s, in.Node, ups, hist, histErr, addrs), nil
}

// withReplayTimeline corrects a running standby's timeline. Its status
// pairs the timeline of its last restartpoint (or of its WAL receiver,
// when one runs) with its latest received or replayed position, which may
// lie on a later timeline it has switched to since: judged together, a
// standby that followed a promotion would look as if it went on past the
// fork. The WAL segments in its pg_wal name the timelines it has WAL of;
// a standby that did go on past the fork never receives any of the new
// timeline's. When pg_wal cannot be read, the error says so and the
// status is returned as it is.
func (in *Instance) withReplayTimeline(s *Status) (*Status, error) {
	if s.Receiver != nil && s.Receiver.Timeline > 0 {
		return s, nil
	}
	ents, err := os.ReadDir(filepath.Join(in.DataDir, "pg_wal"))
	if err != nil {
		return s, fmt.Errorf("the timeline it replays is unknown (%w)", err)
	}
	c := *s
	for _, e := range ents {
		if n := e.Name(); len(n) == 24 {
			if tl, err := strconv.ParseUint(n[:8], 16, 32); err == nil && uint32(tl) > c.Timeline {
				c.Timeline = uint32(tl)
			}
		}
	}
	return &c, nil
}
