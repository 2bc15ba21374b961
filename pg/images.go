package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
)

// Kinds of fallback image.
const (
	// ImageScheduled is a base backup of the local instance, taken on a
	// schedule.
	ImageScheduled = "scheduled"
	// ImagePrevious is a data directory that a re-seed or restore
	// replaced, kept whole.
	ImagePrevious = "previous"
)

// Image is a fallback image: a complete data directory kept beside the
// live one, from which the instance can start when replication or the
// database itself is broken. Its metadata lives next to it in <ID>.json;
// a directory without metadata is incomplete and never used.
type Image struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Node     string    `json:"node"`
	Taken    time.Time `json:"taken"`
	SystemID string    `json:"system_id,omitempty"`
	Timeline uint32    `json:"timeline,omitempty"`
	LSN      LSN       `json:"lsn,omitempty"`
	Note     string    `json:"note,omitempty"`
	// Dir is the image's data directory (not stored: derived from ID).
	Dir string `json:"-"`
}

// ImageStore is a directory of fallback images kept in rotation.
type ImageStore struct {
	Dir  string
	Keep int
}

// Images returns the instance's image store.
func (in *Instance) Images() *ImageStore {
	return &ImageStore{Dir: in.imagesDir(), Keep: in.keepImages()}
}

// newImageID names an image so that names sort by time.
func newImageID(kind string, t time.Time) string {
	return t.UTC().Format("20060102T150405.000Z") + "-" + kind
}

func (s *ImageStore) metaPath(id string) string { return filepath.Join(s.Dir, id+".json") }

// List returns the complete images, newest first.
func (s *ImageStore) List() ([]Image, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing fallback images in %s: %w", s.Dir, err)
	}
	var out []Image
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil {
			continue
		}
		var img Image
		if err := json.Unmarshal(b, &img); err != nil || img.ID != strings.TrimSuffix(name, ".json") || strings.ContainsAny(img.ID, `/\`) {
			continue // not ours, or damaged: never act on it
		}
		img.Dir = filepath.Join(s.Dir, img.ID)
		if st, err := os.Stat(img.Dir); err != nil || !st.IsDir() {
			continue
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Taken.Equal(out[j].Taken) {
			return out[i].Taken.After(out[j].Taken)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

// Newest returns the most recent complete image.
func (s *ImageStore) Newest() (Image, error) {
	imgs, err := s.List()
	if err != nil {
		return Image{}, err
	}
	if len(imgs) == 0 {
		return Image{}, fmt.Errorf("no fallback image in %s", s.Dir)
	}
	return imgs[0], nil
}

// add records dir (already at its place in the store) as an image.
func (s *ImageStore) add(img Image) error {
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding image metadata: %w", err)
	}
	return writeAtomic(s.metaPath(img.ID), append(b, '\n'), 0o644)
}

// Prune deletes the oldest images beyond Keep, and leftovers of image
// copies that never completed. It is only ever called once the operation
// that produced the newest image has finished, so an image is never
// removed while it is the only good copy.
func (s *ImageStore) Prune() ([]Image, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	keep := max(1, s.Keep)
	var removed []Image
	for i := keep; i < len(imgs); i++ {
		if err := s.remove(imgs[i]); err != nil {
			return removed, err
		}
		removed = append(removed, imgs[i])
	}
	ents, _ := os.ReadDir(s.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") && e.IsDir() {
			_ = os.RemoveAll(filepath.Join(s.Dir, e.Name()))
		}
	}
	return removed, nil
}

// remove deletes one image: metadata first, since an image without it is
// incomplete, so a crash halfway through leaves no image that looks whole.
func (s *ImageStore) remove(img Image) error {
	if err := os.Remove(s.metaPath(img.ID)); err != nil {
		return fmt.Errorf("removing fallback image %s: %w", img.ID, err)
	}
	if err := os.RemoveAll(img.Dir); err != nil {
		return fmt.Errorf("removing fallback image %s: %w", img.ID, err)
	}
	return nil
}

// TakeImage takes a base backup of the running local instance into the
// image store, then prunes the store to KeepImages. It works on a master
// and on a standby (pg_basebackup from a standby is allowed). The instance
// keeps running and serving.
func (in *Instance) TakeImage(ctx context.Context) (Image, error) {
	if err := in.validate(); err != nil {
		return Image{}, err
	}
	lk, err := lock(in.lockPath())
	if errors.Is(err, errLocked) {
		return Image{}, refuse("fallback image", in.Node, ReasonBusy, false,
			"wait for the running re-seed or restore to finish", "a re-seed or restore of %s is running", in.Node)
	}
	if err != nil {
		return Image{}, err
	}
	defer lk.unlock()
	st, err := in.Status(ctx)
	if err != nil {
		return Image{}, fmt.Errorf("taking a fallback image of %s: %w", in.Node, err)
	}
	store := in.Images()
	if err := ensureDirOwned(store.Dir, in.OSUser); err != nil {
		return Image{}, err
	}
	now := time.Now()
	img := Image{ID: newImageID(ImageScheduled, now), Kind: ImageScheduled, Node: in.Node, Taken: now.UTC(),
		SystemID: st.SystemID, Timeline: st.Timeline}
	pos := st.Position(in.Node)
	img.LSN = pos.LSN
	tmp := filepath.Join(store.Dir, ".tmp-"+img.ID)
	if err := mkdirOwned(tmp, in.OSUser); err != nil {
		return Image{}, err
	}
	ci, _ := ParseConnInfo(in.ConnInfo)
	args := []string{"-D", tmp, "-X", "stream", "-c", "fast"}
	if err := in.basebackup(ctx, ci.With("application_name", in.Node+"-image"), args, nil, nil); err != nil {
		_ = os.RemoveAll(tmp)
		return Image{}, fmt.Errorf("taking a fallback image of %s: %w", in.Node, err)
	}
	img.Dir = filepath.Join(store.Dir, img.ID)
	if err := renameDurable(tmp, img.Dir); err != nil {
		return Image{}, err
	}
	if err := store.add(img); err != nil {
		return Image{}, err
	}
	if _, err := store.Prune(); err != nil {
		return img, err
	}
	return img, nil
}

// ScheduleImages takes a fallback image every interval until ctx ends,
// reporting each result (the agent logs failures and raises an alert;
// one failed image is not a reason to stop taking them).
func (in *Instance) ScheduleImages(ctx context.Context, every time.Duration, report func(Image, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			img, err := in.TakeImage(ctx)
			if report != nil {
				report(img, err)
			}
		}
	}
}

// RestoreOptions say how to start from a fallback image.
type RestoreOptions struct {
	// AsStandby makes the restored instance a standby of PrimaryConnInfo
	// (written as primary_conninfo with application_name set to the node,
	// and primary_slot_name Slot when set). Otherwise it starts as the
	// image left it: a master image as a master, a standby's data
	// directory as a standby.
	AsStandby       bool
	PrimaryConnInfo string
	Slot            string
	// KeepFiles are configuration files carried over from the current
	// data directory; DefaultKeepFiles when nil, none when empty (for
	// when the configuration is what broke).
	KeepFiles []string
	Progress  func(protocol.Progress)
}

// RestoreImage replaces the data directory with a copy of img and starts
// the server from it. The image itself is kept, and the data directory it
// replaces becomes an image in its turn: nothing is deleted. Use it when
// the database is broken beyond what replication can fix (for example the
// only copy is corrupt).
func (in *Instance) RestoreImage(ctx context.Context, img Image, opts RestoreOptions) error {
	if img.Dir == "" || img.ID == "" {
		return refuse(OpRestore, in.Node, ReasonNoImage, false, "pick an image from the image list", "no image given")
	}
	lk, err := in.startOp(OpRestore)
	if err != nil {
		return err
	}
	defer lk.unlock()
	t, err := in.begin(ctx, OpRestore, opts.Progress)
	if err != nil {
		return err
	}
	t.j.Image = img.ID
	t.j.AsStandby = opts.AsStandby
	if err := t.stopAndPrepare(ctx, "copy of image "+img.ID); err != nil {
		return err
	}
	t.report("copy", 10, "copying image "+img.ID)
	copyErr := copyTree(img.Dir, t.j.NewDir, func(done, total int64) {
		if total > 0 {
			t.report("copy", 10+80*float64(done)/float64(total), fmt.Sprintf("%d/%d kB", done/1024, total/1024))
		}
	})
	if copyErr == nil && opts.AsStandby {
		copyErr = writeStandbyConfig(t.j.NewDir, in.Node, opts.PrimaryConnInfo, opts.Slot, in.OSUser)
	}
	if copyErr != nil {
		return t.rollBack(ctx, nil, fmt.Errorf("restoring %s from image %s: %w", in.Node, img.ID, copyErr))
	}
	// A base backup carries the postmaster.pid of nobody; an old data
	// directory may carry a stale one. Neither belongs to a new start.
	_ = os.Remove(filepath.Join(t.j.NewDir, "postmaster.pid"))
	return t.complete(ctx, opts.KeepFiles, nil)
}

// writeStandbyConfig makes dir start as a standby of primary.
func writeStandbyConfig(dir, node, primary, slot, osUser string) error {
	ci, err := ParseConnInfo(primary)
	if err != nil {
		return fmt.Errorf("primary connection string: %w", err)
	}
	if len(ci) == 0 {
		return errors.New("a standby needs a primary connection string: set PrimaryConnInfo")
	}
	conf := fmt.Sprintf("\n# written by hatui when restoring a fallback image\nprimary_conninfo = %s\n", quoteConf(ci.With("application_name", node).String()))
	if slot != "" {
		conf += fmt.Sprintf("primary_slot_name = %s\n", quoteConf(slot))
	}
	auto := filepath.Join(dir, "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	sig := filepath.Join(dir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	for _, p := range []string{auto, sig} {
		if err := chownTo(p, osUser); err != nil {
			return err
		}
	}
	return nil
}

// quoteConf quotes a postgresql.conf string value.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}

// RestoreNewest starts the instance from the newest fallback image: the
// resource's way out when replication or the database is broken and no
// master can re-seed it. A standby node should pass AsStandby, or the
// image starts as a second master.
func (in *Instance) RestoreNewest(ctx context.Context, opts RestoreOptions) (Image, error) {
	img, err := in.Images().Newest()
	if err != nil {
		return Image{}, refuse(OpRestore, in.Node, ReasonNoImage, false,
			"re-seed from the master instead, or take images on a schedule (TakeImage) so one exists next time",
			"%v", err)
	}
	return img, in.RestoreImage(ctx, img, opts)
}
