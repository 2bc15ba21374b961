package pg

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lib/pq"
)

// OpAdopt names the adoption of a running standby in refusals.
const OpAdopt = "adopt"

// AdoptOptions configure Adopt.
type AdoptOptions struct {
	// Slot is the replication slot the standby should use; SlotName(Node)
	// when empty.
	Slot string
	// Wait bounds the wait for the WAL receiver to stream again under the
	// new settings; 60 s when zero.
	Wait time.Duration
}

// AdoptResult says what Adopt changed.
type AdoptResult struct {
	Master string
	// Changes are sentences, one per change; none when the standby
	// already streamed under the node's name with its slot.
	Changes []string
}

// String renders the changes for an event.
func (r *AdoptResult) String() string {
	if len(r.Changes) == 0 {
		return "nothing to change"
	}
	return strings.Join(r.Changes, "; ")
}

// adoptRecord is the crash record of an adoption, kept beside the data
// directory from the first change until the standby streams under the
// new settings (or they are rolled back).
type adoptRecord struct {
	Version int       `json:"version"`
	Node    string    `json:"node"`
	Master  string    `json:"master"`
	Started time.Time `json:"started"`
	// Old settings and whether they lived in postgresql.auto.conf (then
	// they are set back) or elsewhere (then the override is reset).
	OldConnInfo     string `json:"old_conninfo"`
	OldConnInfoAuto bool   `json:"old_conninfo_auto"`
	OldSlot         string `json:"old_slot"`
	OldSlotAuto     bool   `json:"old_slot_auto"`
	NewConnInfo     string `json:"new_conninfo"`
	NewSlot         string `json:"new_slot"`
	// SlotCreated says the adoption created NewSlot on the master, so a
	// roll back drops it rather than leave it holding WAL.
	SlotCreated bool `json:"slot_created"`
}

// adoptHook, when set (by tests only), runs once the new settings are
// set; a test makes it panic to stand for the process dying there.
var adoptHook func()

// decodeAdoptRecord reads an adoption record. One that fails is never
// acted on: the operator is told to look.
func decodeAdoptRecord(b []byte) (*adoptRecord, error) {
	var rec adoptRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	switch {
	case rec.Version != 1:
		return nil, fmt.Errorf("version %d is not 1", rec.Version)
	case rec.Node == "" || rec.Master == "":
		return nil, errors.New("it names no node or master")
	case rec.NewSlot == "" || (rec.SlotCreated && rec.NewSlot == rec.OldSlot):
		return nil, errors.New("its slots are inconsistent")
	}
	return &rec, nil
}

func (in *Instance) adoptPath() string { return in.sibling(".adopt.json") }

// standbySettings are a standby's replication settings, as set.
type standbySettings struct {
	ConnInfo, Slot         string
	ConnInfoAuto, SlotAuto bool // set in postgresql.auto.conf
}

// readStandbySettings reads primary_conninfo and primary_slot_name with
// where each is set. It needs a superuser (or pg_read_all_settings):
// primary_conninfo may hold a password.
func readStandbySettings(ctx context.Context, conn *sql.Conn) (standbySettings, error) {
	var st standbySettings
	rows, err := conn.QueryContext(ctx, `SELECT name, coalesce(setting, ''), coalesce(sourcefile, '') LIKE '%/postgresql.auto.conf'
		FROM pg_settings WHERE name IN ('primary_conninfo', 'primary_slot_name')`)
	if err != nil {
		return st, fmt.Errorf("reading primary_conninfo and primary_slot_name: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name, val string
		var auto bool
		if err := rows.Scan(&name, &val, &auto); err != nil {
			return st, fmt.Errorf("reading primary_conninfo and primary_slot_name: %w", err)
		}
		if name == "primary_conninfo" {
			st.ConnInfo, st.ConnInfoAuto = val, auto
		} else {
			st.Slot, st.SlotAuto = val, auto
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("reading primary_conninfo and primary_slot_name: %w", err)
	}
	if n != 2 {
		return st, errors.New("reading primary_conninfo and primary_slot_name: not visible to this role (connect as a superuser or a member of pg_read_all_settings)")
	}
	return st, nil
}

// Adopt makes a running standby, however it was made, stream under the
// node's application_name and through the node's replication slot, so
// that the master lists it by name and keeps the WAL it needs. Nothing is
// copied and the server is not restarted: the slot is created on the
// master, primary_conninfo and primary_slot_name are set by ALTER SYSTEM,
// and a reload makes the WAL receiver reconnect. A slot the standby used
// before under another name is dropped once the new one is in use (it
// would otherwise keep WAL forever). If the receiver does not stream
// again within the wait, every change is rolled back. A record beside
// the data directory makes an adoption cut off half-way finish or roll
// back at the next RecoverAdopt.
func (in *Instance) Adopt(ctx context.Context, master Peer, opts AdoptOptions) (*AdoptResult, error) {
	lk, err := in.startOp(OpAdopt)
	if err != nil {
		return nil, err
	}
	defer lk.unlock()
	if !fileGone(in.adoptPath()) {
		return nil, refuse(OpAdopt, in.Node, ReasonInterrupted, false,
			"let the agent recover it (it does at start), or run RecoverAdopt",
			"an earlier adoption of %s did not finish (%s)", in.Node, in.adoptPath())
	}
	slot := opts.Slot
	if slot == "" {
		slot = SlotName(in.Node)
	}
	res := &AdoptResult{Master: master.Node}
	db, conn, err := open(ctx, in.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("adopting %s: %w", in.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	s, err := readStatus(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("adopting %s: %w", in.Node, err)
	}
	if s.Role != RoleStandby {
		return nil, refuse(OpAdopt, in.Node, ReasonNotStandby, false, "nothing to adopt on a master", "%s is not in recovery", in.Node)
	}
	old, err := readStandbySettings(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("adopting %s: %w", in.Node, err)
	}
	rec := &adoptRecord{Version: 1, Node: in.Node, Master: master.Node, Started: time.Now().UTC(),
		OldConnInfo: old.ConnInfo, OldConnInfoAuto: old.ConnInfoAuto, OldSlot: old.Slot, OldSlotAuto: old.SlotAuto, NewSlot: slot}
	rec.NewConnInfo, err = withAppName(old.ConnInfo, master.ConnInfo, in.Node)
	if err != nil {
		return nil, refuse(OpAdopt, in.Node, ReasonLayout, false,
			"fix primary_conninfo by hand", "primary_conninfo of %s cannot be read: %v", in.Node, err)
	}
	created, err := ensureSlot(ctx, master, slot, s.Receiver)
	if err != nil {
		return nil, err
	}
	rec.SlotCreated = created
	if created {
		res.Changes = append(res.Changes, fmt.Sprintf("created replication slot %q on %s", slot, master.Node))
	}
	if rec.NewConnInfo == old.ConnInfo && slot == old.Slot {
		return res, nil
	}
	if rec.NewConnInfo != old.ConnInfo {
		res.Changes = append(res.Changes, fmt.Sprintf("application_name %s → %s (primary_conninfo)", orNone(appNameOf(old.ConnInfo)), in.Node))
	}
	if slot != old.Slot {
		res.Changes = append(res.Changes, fmt.Sprintf("replication slot %s → %s (primary_slot_name)", orNone(old.Slot), slot))
	}
	if err := in.writeAdoptRecord(rec); err != nil {
		if created {
			_, _ = dropSlot(ctx, master, slot)
		}
		return nil, err
	}
	if err := setStandbySettings(ctx, conn, rec.NewConnInfo, true, slot, true); err != nil {
		return nil, in.rollBackAdopt(ctx, rec, master, fmt.Errorf("adopting %s: %w", in.Node, err))
	}
	if adoptHook != nil {
		adoptHook()
	}
	wait := opts.Wait
	if wait <= 0 {
		wait = 60 * time.Second
	}
	if err := in.waitAdopted(ctx, master, slot, wait); err != nil {
		return nil, in.rollBackAdopt(ctx, rec, master, fmt.Errorf("adopting %s: the standby did not stream under the new settings: %w", in.Node, err))
	}
	res.Changes = append(res.Changes, "reloaded the configuration: the WAL receiver reconnected, no restart")
	if msg := in.finishAdopt(ctx, rec, master); msg != "" {
		res.Changes = append(res.Changes, msg)
	}
	return res, nil
}

// withAppName returns conninfo with application_name set to node; an
// empty conninfo becomes the master's.
func withAppName(conninfo, masterConnInfo, node string) (string, error) {
	if strings.TrimSpace(conninfo) == "" {
		conninfo = masterConnInfo
	}
	ci, err := ParseConnInfo(conninfo)
	if err != nil {
		return "", err
	}
	if ci["application_name"] == node && conninfo != masterConnInfo {
		return conninfo, nil
	}
	return ci.With("application_name", node).String(), nil
}

func appNameOf(conninfo string) string {
	ci, err := ParseConnInfo(conninfo)
	if err != nil || ci["application_name"] == "" {
		return "walreceiver (none set)"
	}
	return ci["application_name"]
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// setStandbySettings sets primary_conninfo and primary_slot_name with
// ALTER SYSTEM (or resets an override to fall back to postgresql.conf)
// and reloads.
func setStandbySettings(ctx context.Context, conn *sql.Conn, conninfo string, connAuto bool, slot string, slotAuto bool) error {
	for _, p := range []struct {
		name, val string
		set       bool
	}{{"primary_conninfo", conninfo, connAuto}, {"primary_slot_name", slot, slotAuto}} {
		q := "ALTER SYSTEM RESET " + p.name
		if p.set {
			q = fmt.Sprintf("ALTER SYSTEM SET %s = %s", p.name, pq.QuoteLiteral(p.val))
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("ALTER SYSTEM of %s: %w", p.name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reloading the configuration: %w", err)
	}
	return nil
}

// ensureSlot creates a physical slot on the master unless it exists, and
// reports whether it created it. A slot that another standby is using
// (not the receiver r) is refused.
func ensureSlot(ctx context.Context, master Peer, slot string, r *Receiver) (bool, error) {
	db, conn, err := open(ctx, master.ConnInfo)
	if err != nil {
		return false, fmt.Errorf("creating replication slot %q on %s: %w", slot, master.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	var typ string
	var active bool
	var pid sql.NullInt64
	err = conn.QueryRowContext(ctx, `SELECT slot_type, active, active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&typ, &active, &pid)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
			return false, fmt.Errorf("creating replication slot %q on %s: %w", slot, master.Node, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading replication slot %q on %s: %w", slot, master.Node, err)
	case typ != "physical":
		return false, refuse(OpAdopt, master.Node, ReasonLayout, false, "name another slot for this standby",
			"slot %q on %s is a %s slot", slot, master.Node, typ)
	case active && (r == nil || r.SlotName != slot):
		return false, refuse(OpAdopt, master.Node, ReasonLayout, false, "give each standby its own slot; find the other standby with pg_stat_replication",
			"replication slot %q on %s is in use by another connection (process %d)", slot, master.Node, pid.Int64)
	}
	return false, nil
}

// dropSlot drops an inactive slot on the master, waiting briefly for a
// walsender that just let go of it. It says what it did; "" when there
// was no such slot.
func dropSlot(ctx context.Context, master Peer, slot string) (string, error) {
	db, conn, err := open(ctx, master.ConnInfo)
	if err != nil {
		return "", fmt.Errorf("could not drop replication slot %q on %s: %v", slot, master.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := conn.QueryRowContext(ctx, `SELECT count(pg_drop_replication_slot(slot_name))
			FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot).Scan(&n)
		if err == nil && n == 1 {
			return fmt.Sprintf("dropped replication slot %q on %s", slot, master.Node), nil
		}
		var active bool
		err2 := conn.QueryRowContext(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if errors.Is(err2, sql.ErrNoRows) {
			return "", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("could not drop replication slot %q on %s: still in use (drop it by hand if no standby uses it)", slot, master.Node)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitAdopted waits until the standby's receiver streams through slot
// and the master lists it under the node's name (streaming or catching
// up).
func (in *Instance) waitAdopted(ctx context.Context, master Peer, slot string, wait time.Duration) error {
	_, err := in.waitStatus(ctx, wait, func(s *Status) (bool, string) {
		m, err := QueryStatus(ctx, master.ConnInfo)
		if err != nil {
			return false, fmt.Sprintf("master %s unreachable: %v", master.Node, err)
		}
		if m.Role != RoleMaster {
			return false, master.Node + " is no longer a master"
		}
		switch r := s.Receiver; {
		case r == nil:
			return false, "the WAL receiver is not running"
		case r.Status != "streaming":
			return false, "the WAL receiver is " + r.Status
		case r.SlotName != slot:
			return false, fmt.Sprintf("the WAL receiver uses slot %q, not %q", r.SlotName, slot)
		}
		row, ok := m.StandbyNamed(in.Node)
		if !ok || (row.State != "streaming" && row.State != "catchup") {
			return false, fmt.Sprintf("%s does not list %s in pg_stat_replication", master.Node, in.Node)
		}
		return true, ""
	})
	return err
}

func (in *Instance) writeAdoptRecord(rec *adoptRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the adoption record: %w", err)
	}
	// 0600: primary_conninfo may hold a password.
	return writeAtomic(in.adoptPath(), append(b, '\n'), 0o600)
}

func (in *Instance) removeAdoptRecord() error {
	if err := os.Remove(in.adoptPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", in.adoptPath(), err)
	}
	return nil
}

// finishAdopt drops the slot the standby used before, now that it uses
// its own, and forgets the record. It returns what it did.
func (in *Instance) finishAdopt(ctx context.Context, rec *adoptRecord, master Peer) string {
	var msg string
	if rec.OldSlot != "" && rec.OldSlot != rec.NewSlot {
		m, err := dropSlot(ctx, master, rec.OldSlot)
		switch {
		case err != nil:
			msg = err.Error()
		case m != "":
			msg = m + " (the slot it used before; it would keep WAL forever)"
		}
	}
	if err := in.removeAdoptRecord(); err != nil {
		msg = strings.TrimPrefix(msg+"; "+err.Error(), "; ")
	}
	return msg
}

// rollBackAdopt puts the old settings back, drops a slot the adoption
// created, and forgets the record. cause is returned with what was done.
func (in *Instance) rollBackAdopt(ctx context.Context, rec *adoptRecord, master Peer, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var failed []string
	db, conn, err := open(ctx, in.ConnInfo)
	if err == nil {
		err = setStandbySettings(ctx, conn, rec.OldConnInfo, rec.OldConnInfoAuto, rec.OldSlot, rec.OldSlotAuto)
		conn.Close()
		db.Close()
	}
	if err != nil {
		failed = append(failed, "could not put primary_conninfo and primary_slot_name back: "+err.Error())
	}
	if rec.SlotCreated {
		if _, err := dropSlot(ctx, master, rec.NewSlot); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) == 0 {
		if err := in.removeAdoptRecord(); err != nil {
			failed = append(failed, err.Error())
		}
	}
	msg := "rolled back: the previous primary_conninfo and primary_slot_name are set again"
	if len(failed) > 0 {
		msg = "roll back incomplete (record kept in " + in.adoptPath() + "): " + strings.Join(failed, "; ")
	}
	return rolledBack(cause, len(failed) > 0, msg)
}

// RecoverAdopt finishes or rolls back an adoption that a killed agent
// left half done: when the standby streams under the new settings the
// old slot is dropped, otherwise the old settings are set back. It says
// what it found and did; "" when there was nothing to recover.
func (in *Instance) RecoverAdopt(ctx context.Context, peers []Peer) (string, error) {
	b, err := os.ReadFile(in.adoptPath())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", in.adoptPath(), err)
	}
	rec, err := decodeAdoptRecord(b)
	if err == nil && rec.Node != in.Node {
		err = fmt.Errorf("it is of node %q", rec.Node)
	}
	if err != nil {
		return "", fmt.Errorf("adoption record %s cannot be trusted (%v): inspect primary_conninfo and primary_slot_name, then remove it by hand", in.adoptPath(), err)
	}
	var master *Peer
	for i := range peers {
		if peers[i].Node == rec.Master {
			master = &peers[i]
		}
	}
	if master == nil {
		return "", fmt.Errorf("adoption record %s names master %s, which is not a configured peer: inspect it, then remove it by hand", in.adoptPath(), rec.Master)
	}
	lk, err := in.lockOp("recover " + OpAdopt)
	if err != nil {
		return "", err
	}
	defer lk.unlock()
	what := fmt.Sprintf("an adoption of %s as a standby of %s (started %s) was interrupted", in.Node, rec.Master, rec.Started.Local().Format(time.RFC3339))
	if err := in.waitAdopted(ctx, *master, rec.NewSlot, 10*time.Second); err == nil {
		msg := in.finishAdopt(ctx, rec, *master)
		return strings.TrimSuffix(what+"; it streams under the new settings, so it is complete; "+msg, "; "), nil
	}
	if err := in.rollBackAdopt(ctx, rec, *master, nil); err != nil {
		return "", fmt.Errorf("%s; %w", what, err)
	}
	return what + "; it did not stream under the new settings, so they were rolled back", nil
}

// SetMaxSlotWALKeepSize bounds the WAL a replication slot may hold on this
// instance (max_slot_wal_keep_size, in bytes; -1 for no bound) by ALTER
// SYSTEM and a reload, when it differs. It reports whether it changed it.
// Past the bound PostgreSQL invalidates the slot and its standby needs a
// re-seed: a slower standby is better than a full disk under the master.
func (in *Instance) SetMaxSlotWALKeepSize(ctx context.Context, bytes int64) (bool, error) {
	db, conn, err := open(ctx, in.ConnInfo)
	if err != nil {
		return false, fmt.Errorf("setting max_slot_wal_keep_size on %s: %w", in.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	want := "-1"
	if bytes >= 0 {
		want = fmt.Sprintf("%dMB", (bytes+(1<<20)-1)>>20)
	}
	var cur string
	if err := conn.QueryRowContext(ctx, `SELECT CASE WHEN setting::bigint < 0 THEN '-1' ELSE setting || 'MB' END
		FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`).Scan(&cur); err != nil {
		return false, fmt.Errorf("reading max_slot_wal_keep_size on %s: %w", in.Node, err)
	}
	if cur == want {
		return false, nil
	}
	if _, err := conn.ExecContext(ctx, "ALTER SYSTEM SET max_slot_wal_keep_size = "+pq.QuoteLiteral(want)); err != nil {
		return false, fmt.Errorf("setting max_slot_wal_keep_size on %s: %w", in.Node, err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		return false, fmt.Errorf("reloading the configuration of %s: %w", in.Node, err)
	}
	return true, nil
}
