package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// knowledge is what this site last derived about its own service: the mode
// it knows and how long it may keep serving. It is kept on disk so that a
// restarted agent that cannot reach a majority still stops in time, and it
// is what the site acknowledges to the others (a site acknowledges auto
// mode only once its deadline under auto mode is on disk).
type knowledge struct {
	Site     string    `json:"site"`
	Index    uint64    `json:"index"`
	Mode     Mode      `json:"mode"`
	Limited  bool      `json:"limited"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// same reports whether k and o say the same thing.
func (k knowledge) same(o knowledge) bool {
	return k.Site == o.Site && k.Mode == o.Mode && k.Limited == o.Limited && k.Deadline.Equal(o.Deadline)
}

// deriveKnowledge computes site's knowledge from st.
func deriveKnowledge(st *State, site string, margin time.Duration) knowledge {
	k := knowledge{Site: site, Index: st.Index, Mode: st.Mode, Limited: true}
	if st.Initialized && st.Service == site {
		k.Deadline, k.Limited = st.serviceDeadline(site, margin)
	}
	return k
}

const knowledgeFile = "service.json"

// loadKnowledge reads the knowledge file; a missing or unreadable one is
// no knowledge (the caller then stops serving unless told otherwise).
func loadKnowledge(dataDir, site string) (knowledge, error) {
	if dataDir == "" {
		return knowledge{}, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, knowledgeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return knowledge{}, nil
	}
	if err != nil {
		return knowledge{}, fmt.Errorf("reading the geo service deadline: %w", err)
	}
	var k knowledge
	if err := json.Unmarshal(b, &k); err != nil {
		return knowledge{}, fmt.Errorf("the geo service deadline file %s is corrupt (%v); it is ignored", filepath.Join(dataDir, knowledgeFile), err)
	}
	if k.Site != site {
		return knowledge{}, nil
	}
	return k, nil
}

// saveKnowledge writes k durably: a temporary file, fsync, rename, fsync
// of the directory.
func saveKnowledge(dataDir string, k knowledge) error {
	if dataDir == "" {
		return nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding the geo service deadline: %w", err)
	}
	path := filepath.Join(dataDir, knowledgeFile)
	tmp, err := os.CreateTemp(dataDir, knowledgeFile+".*")
	if err != nil {
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing the geo service deadline: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the geo service deadline: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing the geo service deadline: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
