package pg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Step is how far a re-seed or restore got. Steps only move forward, and
// each is written to the journal before the work it names begins, so that
// a process killed at any instant leaves a journal that says what may be
// half done.
type Step string

// Steps, in order.
const (
	// StepChecked: every refusal check passed; nothing is changed yet.
	StepChecked Step = "checked"
	// StepStopped: the local server is stopped; the data directory is as
	// the server left it.
	StepStopped Step = "stopped"
	// StepCopying: the new copy is being written into NewDir.
	StepCopying Step = "copying"
	// StepCopied: NewDir is complete; the data directory is untouched.
	StepCopied Step = "copied"
	// StepSwapping: the data directory is being moved to PreviousDir and
	// NewDir into its place.
	StepSwapping Step = "swapping"
	// StepSwapped: NewDir is the data directory; the old one is the
	// fallback image at PreviousDir. The server is being started.
	StepSwapped Step = "swapped"
	// StepDone: the new data directory runs; only the journal remains.
	StepDone Step = "done"
)

var stepOrder = map[Step]int{StepChecked: 1, StepStopped: 2, StepCopying: 3, StepCopied: 4, StepSwapping: 5, StepSwapped: 6, StepDone: 7}

// Operations recorded in a journal.
const (
	OpReseed  = "re-seed"
	OpRestore = "restore"
)

// JournalVersion is the journal format written by this package.
const JournalVersion = 1

// Journal is the crash record of a re-seed or restore, kept next to the
// data directory while one runs and removed when it ends.
type Journal struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	Node    string `json:"node"`
	PID     int    `json:"pid"` // the process that ran it
	Step    Step   `json:"step"`

	DataDir string `json:"data_dir"`
	// NewDir is the sibling directory the new data is built in.
	NewDir string `json:"new_dir"`
	// PreviousDir is where the old data directory goes: a fallback image.
	PreviousDir string `json:"previous_dir,omitempty"`
	// HadData says whether there was an old data directory at all.
	HadData bool `json:"had_data"`
	// OldInode and NewInode tell the two directories apart after a crash
	// whatever their names are then.
	OldInode   uint64 `json:"old_inode,omitempty"`
	NewInode   uint64 `json:"new_inode,omitempty"`
	WasRunning bool   `json:"was_running"`

	Master         string `json:"master,omitempty"`
	MasterSystemID string `json:"master_system_id,omitempty"`
	MasterTimeline uint32 `json:"master_timeline,omitempty"`
	Slot           string `json:"slot,omitempty"`
	// SlotCreated says the re-seed created Slot on the master, so a roll
	// back drops it rather than leave it holding WAL forever.
	SlotCreated bool `json:"slot_created,omitempty"`
	// CopyPID is pg_basebackup's process, to be stopped if it outlived us.
	CopyPID int `json:"copy_pid,omitempty"`

	// Image is the fallback image a restore copies.
	Image     string `json:"image,omitempty"`
	AsStandby bool   `json:"as_standby,omitempty"`

	Started time.Time      `json:"started"`
	Updated time.Time      `json:"updated"`
	History []JournalEntry `json:"history"`
}

// JournalEntry is one step taken, for the operator's account of events.
type JournalEntry struct {
	Step Step      `json:"step"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// DecodeJournal reads and validates a journal. A journal that fails
// validation is never acted on: Recover reports it for a human instead.
func DecodeJournal(b []byte) (*Journal, error) {
	var j Journal
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("journal is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("journal has trailing data after its JSON object")
	}
	if err := j.validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

func (j *Journal) validate() error {
	switch {
	case j.Version != JournalVersion:
		return fmt.Errorf("journal version %d is not %d (written by another version of hatui?)", j.Version, JournalVersion)
	case j.Op != OpReseed && j.Op != OpRestore:
		return fmt.Errorf("journal operation %q is neither %q nor %q", j.Op, OpReseed, OpRestore)
	case stepOrder[j.Step] == 0:
		return fmt.Errorf("journal step %q is not known", j.Step)
	case !filepath.IsAbs(j.DataDir) || filepath.Clean(j.DataDir) == "/":
		return fmt.Errorf("journal data directory %q is not an absolute path", j.DataDir)
	case !filepath.IsAbs(j.NewDir) || filepath.Dir(filepath.Clean(j.NewDir)) != filepath.Dir(filepath.Clean(j.DataDir)) || filepath.Clean(j.NewDir) == filepath.Clean(j.DataDir):
		// The journal names directories that recovery deletes or moves:
		// insist the new one is a sibling, never the data directory
		// itself nor somewhere else.
		return fmt.Errorf("journal new directory %q is not a sibling of the data directory %q", j.NewDir, j.DataDir)
	case j.PreviousDir != "" && (!filepath.IsAbs(j.PreviousDir) || filepath.Clean(j.PreviousDir) == filepath.Clean(j.DataDir)):
		return fmt.Errorf("journal previous directory %q is not a usable absolute path", j.PreviousDir)
	case j.HadData && j.PreviousDir == "":
		return errors.New("journal has a data directory to keep but no place for it")
	}
	return nil
}

// readJournal returns the journal at path, or nil when there is none.
func readJournal(path string) (*Journal, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading journal %s: %w", path, err)
	}
	j, err := DecodeJournal(b)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// journalWriter records steps of one operation.
type journalWriter struct {
	path string
	j    *Journal
}

// stepHook, when set (by tests only), is called after each step is
// written; a test makes it panic to stand for the process dying there.
var stepHook func(Step)

// set moves the journal to step and writes it durably.
func (w *journalWriter) set(step Step, note string) error {
	now := time.Now().UTC()
	w.j.Step = step
	w.j.Updated = now
	w.j.History = append(w.j.History, JournalEntry{Step: step, At: now, Note: note})
	if err := w.write(); err != nil {
		return err
	}
	if stepHook != nil {
		stepHook(step)
	}
	return nil
}

func (w *journalWriter) write() error {
	b, err := json.MarshalIndent(w.j, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding journal: %w", err)
	}
	return writeAtomic(w.path, append(b, '\n'), 0o600)
}

func (w *journalWriter) remove() error {
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing journal %s: %w", w.path, err)
	}
	return syncDir(filepath.Dir(w.path))
}
