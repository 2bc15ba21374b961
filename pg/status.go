package pg

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Role is what an instance is doing now.
type Role string

// Roles. Whether a standby is local or geo is configuration, not something
// the server knows; see View.
const (
	RoleMaster  Role = "master"
	RoleStandby Role = "standby"
)

// Status is one instance's replication state, read in one connection.
type Status struct {
	At            time.Time // the server's clock when read
	Role          Role
	SystemID      string // pg_control_system(): the cluster's identity
	Timeline      uint32
	ServerVersion int // e.g. 150010

	// On a master: the WAL write position and what is flushed.
	CurrentLSN LSN
	FlushLSN   LSN
	// On a standby: what was received and what is replayed.
	ReceiveLSN LSN
	ReplayLSN  LSN
	// ReplayTime is the commit time of the last replayed transaction.
	ReplayTime *time.Time
	// ReplayDelay is how far replay is behind the transactions it has
	// received: zero when everything received is replayed, nil when
	// unknown (nothing ever received by streaming).
	ReplayDelay  *time.Duration
	ReplayPaused bool

	// Standbys are the master's pg_stat_replication rows, without running
	// base backups.
	Standbys []Standby
	// Receiver is the standby's WAL receiver; nil when it is not running
	// (no master reachable, or streaming not configured).
	Receiver *Receiver
	Slots    []Slot
	// ClusterName is the cluster_name setting: the application_name a
	// standby's WAL receiver uses when primary_conninfo names none.
	ClusterName string
	// MaxSlotWALKeepSize is max_slot_wal_keep_size in bytes; -1 when
	// unlimited (PostgreSQL's default), so a slot may keep WAL until the
	// disk is full.
	MaxSlotWALKeepSize int64
}

// Standby is one row of the master's pg_stat_replication.
type Standby struct {
	PID             int
	ApplicationName string
	ClientAddr      string
	State           string // "startup", "catchup", "streaming", "stopping"
	SyncState       string // "async", "sync", "potential", "quorum"
	SentLSN         LSN
	WriteLSN        LSN
	FlushLSN        LSN
	ReplayLSN       LSN
	// LagBytes is the master's current position minus what the standby
	// has replayed. It is kept beside the time lags because those are
	// NULL when the standby is idle and caught up.
	LagBytes  int64
	WriteLag  *time.Duration
	FlushLag  *time.Duration
	ReplayLag *time.Duration
	ReplyTime *time.Time
}

// Receiver is a standby's pg_stat_wal_receiver row.
type Receiver struct {
	PID          int
	Status       string // "streaming", "starting", "waiting", "restarting", "stopping"
	Timeline     uint32 // received_tli
	WrittenLSN   LSN
	FlushedLSN   LSN
	LatestEndLSN LSN
	LastMessage  *time.Time
	SlotName     string
	SenderHost   string
	SenderPort   int
	// ConnInfo is the receiver's connection string as PostgreSQL shows
	// it (passwords hidden), with application_name when one is set.
	ConnInfo string
}

// Slot is one replication slot.
type Slot struct {
	Name      string
	Type      string // "physical", "logical"
	Active    bool
	ActivePID int
	Temporary bool
	// RestartLSN is the oldest WAL the slot keeps.
	RestartLSN LSN
	WALStatus  string // "reserved", "extended", "unreserved", "lost"
	// RetainedBytes is how much WAL the slot holds back from recycling.
	RetainedBytes int64
	// SafeWALSize is how much more WAL can be written before the slot
	// is invalidated by max_slot_wal_keep_size; nil when unlimited.
	SafeWALSize *int64
}

// Position is the freshest WAL an instance holds.
func (s *Status) Position(node string) Position {
	p := Position{Node: node, SystemID: s.SystemID, Timeline: s.Timeline, Running: true, Standby: s.Role == RoleStandby}
	if s.Role == RoleMaster {
		p.LSN = s.CurrentLSN
	} else {
		p.LSN = max(s.ReceiveLSN, s.ReplayLSN)
	}
	return p
}

// StandbyNamed returns the master's row for the standby whose
// application_name is name, preferring a streaming row.
func (s *Status) StandbyNamed(name string) (Standby, bool) {
	var found Standby
	ok := false
	for _, r := range s.Standbys {
		if r.ApplicationName != name {
			continue
		}
		if !ok || r.State == "streaming" {
			found, ok = r, true
		}
	}
	return found, ok
}

// Position is where an instance's WAL ends, running or not. It is what
// freshness and "ahead" are decided on.
type Position struct {
	Node     string
	SystemID string
	Timeline uint32
	LSN      LSN
	Running  bool
	// Standby is true when the instance is (or was last) in recovery.
	Standby bool
}

// Ahead reports whether p holds WAL that o lacks: a later timeline, or
// the same timeline further on. A position on an earlier timeline is
// never ahead, even with a larger LSN: its history forked off and the
// tail after the fork is exactly what a re-seed replaces.
func (p Position) Ahead(o Position) bool {
	if p.Timeline != o.Timeline {
		return p.Timeline > o.Timeline
	}
	return p.LSN > o.LSN
}

// String renders the position for messages.
func (p Position) String() string {
	return fmt.Sprintf("timeline %d at %s", p.Timeline, p.LSN)
}

// open connects to conninfo with one connection, for one set of queries
// within ctx: the connection is closed when ctx ends (see newConnector).
func open(ctx context.Context, conninfo string) (*sql.DB, *sql.Conn, error) {
	ci, err := ParseConnInfo(conninfo)
	if err != nil {
		return nil, nil, err
	}
	connector, err := newConnector(ctx, conninfo)
	if err != nil {
		return nil, nil, fmt.Errorf("connection string for %s: %w", ci.Endpoint(), err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("connecting to %s: %w", ci.Endpoint(), err)
	}
	return db, conn, nil
}

// QueryStatus reads the replication state of the instance at conninfo.
func QueryStatus(ctx context.Context, conninfo string) (*Status, error) {
	db, conn, err := open(ctx, conninfo)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	defer conn.Close()
	return readStatus(ctx, conn)
}

// Status reads this instance's replication state.
func (in *Instance) Status(ctx context.Context) (*Status, error) {
	s, err := QueryStatus(ctx, in.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", in.Node, err)
	}
	return s, nil
}

func readStatus(ctx context.Context, conn *sql.Conn) (*Status, error) {
	s := &Status{}
	var recovery bool
	var sysid int64
	var ckptTL sql.NullInt64
	err := conn.QueryRowContext(ctx, `SELECT pg_is_in_recovery(),
		(SELECT system_identifier FROM pg_control_system()),
		(SELECT timeline_id FROM pg_control_checkpoint()),
		current_setting('server_version_num')::int, now(), current_setting('cluster_name'),
		(SELECT CASE WHEN setting::bigint < 0 THEN -1 ELSE setting::bigint * 1024 * 1024 END
			FROM pg_settings WHERE name = 'max_slot_wal_keep_size')`).
		Scan(&recovery, &sysid, &ckptTL, &s.ServerVersion, &s.At, &s.ClusterName, &s.MaxSlotWALKeepSize)
	if err != nil {
		return nil, fmt.Errorf("reading role and identity: %w", err)
	}
	// The identifier is an unsigned 64-bit number that SQL shows as a
	// signed bigint; print it as pg_controldata does.
	s.SystemID = strconv.FormatUint(uint64(sysid), 10)
	s.Timeline = uint32(ckptTL.Int64)
	if recovery {
		s.Role = RoleStandby
		err = readStandby(ctx, conn, s)
	} else {
		s.Role = RoleMaster
		err = readMaster(ctx, conn, s)
	}
	if err != nil {
		return nil, err
	}
	if err := readSlots(ctx, conn, s); err != nil {
		return nil, err
	}
	return s, nil
}

func readMaster(ctx context.Context, conn *sql.Conn, s *Status) error {
	var walfile string
	err := conn.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text,
		pg_walfile_name(pg_current_wal_lsn())`).Scan(&s.CurrentLSN, &s.FlushLSN, &walfile)
	if err != nil {
		return fmt.Errorf("reading the master's WAL position: %w", err)
	}
	// The checkpoint's timeline lags a promotion until the next
	// checkpoint; the current WAL file's name never does.
	if len(walfile) >= 8 {
		if tl, err := strconv.ParseUint(walfile[:8], 16, 32); err == nil && tl > 0 {
			s.Timeline = uint32(tl)
		}
	}
	rows, err := conn.QueryContext(ctx, `SELECT pid, coalesce(application_name, ''), coalesce(host(client_addr), ''),
		coalesce(state, ''), coalesce(sync_state, ''),
		sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
		extract(epoch FROM write_lag)::float8, extract(epoch FROM flush_lag)::float8,
		extract(epoch FROM replay_lag)::float8, reply_time
		FROM pg_stat_replication ORDER BY application_name, pid`)
	if err != nil {
		return fmt.Errorf("reading pg_stat_replication: %w", err)
	}
	defer rows.Close()
	var all []Standby
	for rows.Next() {
		var r Standby
		var wl, fl, rl sql.NullFloat64
		var reply sql.NullTime
		if err := rows.Scan(&r.PID, &r.ApplicationName, &r.ClientAddr, &r.State, &r.SyncState,
			&r.SentLSN, &r.WriteLSN, &r.FlushLSN, &r.ReplayLSN, &wl, &fl, &rl, &reply); err != nil {
			return fmt.Errorf("reading pg_stat_replication: %w", err)
		}
		r.WriteLag, r.FlushLag, r.ReplayLag = seconds(wl), seconds(fl), seconds(rl)
		if reply.Valid {
			t := reply.Time
			r.ReplyTime = &t
		}
		applied := r.ReplayLSN
		if applied == 0 {
			applied = r.FlushLSN
		}
		r.LagBytes = s.CurrentLSN.Sub(applied)
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pg_stat_replication: %w", err)
	}
	s.Standbys = withoutBackups(all)
	return nil
}

// withoutBackups drops running base backups: the walsender running
// BASE_BACKUP (state "backup") and the WAL stream that pg_basebackup -X
// stream opens beside it. That stream comes from the same client under the
// same application_name but, unlike a standby, never reports a replay
// position; requiring both keeps a real standby's row even while a
// re-seed of the same node (or its killed leftover) is listed.
func withoutBackups(rows []Standby) []Standby {
	type key struct{ app, addr string }
	backups := map[key]bool{}
	for _, r := range rows {
		if r.State == "backup" {
			backups[key{r.ApplicationName, r.ClientAddr}] = true
		}
	}
	out := rows[:0:0]
	for _, r := range rows {
		if r.State == "backup" || (r.ReplayLSN == 0 && backups[key{r.ApplicationName, r.ClientAddr}]) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func readStandby(ctx context.Context, conn *sql.Conn, s *Status) error {
	var replayTS sql.NullTime
	var delay sql.NullFloat64
	err := conn.QueryRowContext(ctx, `SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
		pg_last_xact_replay_timestamp(), extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
		pg_is_wal_replay_paused()`).Scan(&s.ReceiveLSN, &s.ReplayLSN, &replayTS, &delay, &s.ReplayPaused)
	if err != nil {
		return fmt.Errorf("reading the standby's WAL position: %w", err)
	}
	if replayTS.Valid {
		t := replayTS.Time
		s.ReplayTime = &t
	}
	switch {
	case s.ReceiveLSN == 0:
		// Nothing streamed since start: the delay cannot be told.
	case s.ReplayLSN >= s.ReceiveLSN:
		zero := time.Duration(0)
		s.ReplayDelay = &zero
	case delay.Valid:
		d := time.Duration(max(0, delay.Float64) * float64(time.Second))
		s.ReplayDelay = &d
	}
	var r Receiver
	var tli sql.NullInt64
	var last sql.NullTime
	err = conn.QueryRowContext(ctx, `SELECT pid, coalesce(status, ''), received_tli, written_lsn::text,
		flushed_lsn::text, latest_end_lsn::text, last_msg_receipt_time, coalesce(slot_name, ''),
		coalesce(sender_host, ''), coalesce(sender_port, 0), coalesce(conninfo, '')
		FROM pg_stat_wal_receiver`).Scan(&r.PID, &r.Status, &tli, &r.WrittenLSN, &r.FlushedLSN,
		&r.LatestEndLSN, &last, &r.SlotName, &r.SenderHost, &r.SenderPort, &r.ConnInfo)
	switch {
	case err == sql.ErrNoRows:
		// No row: the receiver is not running.
	case err != nil:
		return fmt.Errorf("reading pg_stat_wal_receiver: %w", err)
	default:
		r.Timeline = uint32(tli.Int64)
		if last.Valid {
			t := last.Time
			r.LastMessage = &t
		}
		s.Receiver = &r
		if r.Timeline > s.Timeline {
			s.Timeline = r.Timeline
		}
	}
	return nil
}

func readSlots(ctx context.Context, conn *sql.Conn, s *Status) error {
	rows, err := conn.QueryContext(ctx, `SELECT slot_name, slot_type, active, coalesce(active_pid, 0),
		temporary, restart_lsn::text, coalesce(wal_status, ''), safe_wal_size
		FROM pg_replication_slots ORDER BY slot_name`)
	if err != nil {
		return fmt.Errorf("reading pg_replication_slots: %w", err)
	}
	defer rows.Close()
	pos := s.CurrentLSN
	if s.Role == RoleStandby {
		pos = max(s.ReceiveLSN, s.ReplayLSN)
	}
	for rows.Next() {
		var sl Slot
		var safe sql.NullInt64
		if err := rows.Scan(&sl.Name, &sl.Type, &sl.Active, &sl.ActivePID, &sl.Temporary, &sl.RestartLSN, &sl.WALStatus, &safe); err != nil {
			return fmt.Errorf("reading pg_replication_slots: %w", err)
		}
		if safe.Valid {
			n := safe.Int64
			sl.SafeWALSize = &n
		}
		if sl.RestartLSN != 0 {
			sl.RetainedBytes = pos.Sub(sl.RestartLSN)
		}
		s.Slots = append(s.Slots, sl)
	}
	return rows.Err()
}

func seconds(f sql.NullFloat64) *time.Duration {
	if !f.Valid {
		return nil
	}
	d := time.Duration(f.Float64 * float64(time.Second))
	return &d
}
