package pg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// RewindResult says what Rewind did.
type RewindResult struct {
	Master string
	// OldEnd is where the former master's WAL ended before the rewind
	// (its timeline and position from the control file).
	OldTimeline uint32
	OldEnd      LSN
	// DivergedAt is where its history left the master's; zero when
	// pg_rewind found nothing to rewind.
	DivergedAt LSN
	// Image is the copy of the data taken before the rewind (the
	// fallback image holding what only the former master had).
	Image *Image
	// LostBytes is OldEnd − DivergedAt: WAL written only on the former
	// master (transactions its clients may have seen committed), now
	// discarded from the data directory. 0 when nothing diverged.
	LostBytes int64
	Took      time.Duration
	Output    string
}

// Lost describes the discarded range in words, for an event and an alert.
func (r RewindResult) Lost() string {
	if r.LostBytes <= 0 {
		return "nothing of its own was discarded"
	}
	return fmt.Sprintf("WAL %s to %s on timeline %d (%s) was written only on it and is discarded", r.DivergedAt, r.OldEnd, r.OldTimeline, Bytes(r.LostBytes))
}

var divergedRE = regexp.MustCompile(`diverged at WAL location ([0-9A-Fa-f]+/[0-9A-Fa-f]+) on timeline ([0-9]+)`)

// Rewind makes a stopped former master (or a standby whose timeline left
// the master's) a standby of master with pg_rewind, which copies only
// the blocks changed since the histories diverged, instead of a full
// re-seed. It needs wal_log_hints = on or data checksums on this data
// (CheckRewindable). The data then streams from master under the node's
// slot (created on master first); the caller starts it. The discarded
// range is in the result.
func (in *Instance) Rewind(ctx context.Context, master Peer) (RewindResult, error) {
	const op = "rewind"
	res := RewindResult{Master: master.Node}
	lk, err := in.startOp(op)
	if err != nil {
		return res, err
	}
	defer lk.unlock()
	if up, err := in.Running(ctx); err != nil {
		return res, err
	} else if up {
		return res, refuse(op, in.Node, ReasonBusy, false, "stop it first", "%s is running", in.Node)
	}
	cd, err := in.ControlData(ctx)
	if err != nil {
		return res, err
	}
	res.OldTimeline, res.OldEnd = cd.Position()
	start := time.Now()
	img, err := in.copyAside(ctx, cd, "before pg_rewind from "+master.Node)
	if err != nil {
		return res, err
	}
	res.Image = &img
	cmd, err := in.command(ctx, "pg_rewind", "-D", in.DataDir, "--source-server="+master.ConnInfo)
	if err != nil {
		return res, err
	}
	out, err := cmd.CombinedOutput()
	res.Output, res.Took = string(out), time.Since(start)
	if err != nil {
		return res, fmt.Errorf("pg_rewind of %s from %s: %w: %s", in.Node, master.Node, err, strings.TrimSpace(string(out)))
	}
	// pg_rewind copied the master's configuration files; this node's
	// own (port, listen address, access rules) come back from the copy.
	if err := carryFiles(img.Dir, in.DataDir, nil, in.OSUser); err != nil {
		return res, fmt.Errorf("restoring the configuration of %s after pg_rewind: %w", in.Node, err)
	}
	if m := divergedRE.FindStringSubmatch(res.Output); m != nil {
		if lsn, err := ParseLSN(m[1]); err == nil {
			res.DivergedAt = lsn
			if tl, _ := strconv.Atoi(m[2]); uint32(tl) == res.OldTimeline && res.OldEnd > lsn {
				res.LostBytes = res.OldEnd.Sub(lsn)
			}
		}
	}
	slot := SlotName(in.Node)
	if _, err := ensureSlot(ctx, master, slot, nil); err != nil {
		return res, err
	}
	if err := writeStandbyConfig(in.DataDir, in.Node, master.ConnInfo, slot, in.OSUser); err != nil {
		return res, fmt.Errorf("making the rewound data of %s a standby of %s: %w", in.Node, master.Node, err)
	}
	return res, nil
}

// copyAside copies the stopped data directory into the image store (cp
// -a as the server's user), so that a rewind never destroys the only
// copy of what the former master held.
func (in *Instance) copyAside(ctx context.Context, cd ControlData, note string) (Image, error) {
	store := in.Images()
	if err := ensureDirOwned(store.Dir, in.OSUser); err != nil {
		return Image{}, err
	}
	now := time.Now()
	tl, lsn := cd.Position()
	img := Image{ID: newImageID(ImagePrevious, now), Kind: ImagePrevious, Node: in.Node, Taken: now.UTC(),
		SystemID: cd.SystemID, Timeline: tl, LSN: lsn, Note: note}
	tmp := filepath.Join(store.Dir, ".tmp-"+img.ID)
	cmd, err := in.command(ctx, "/bin/cp", "-a", filepath.Clean(in.DataDir), tmp)
	if err != nil {
		return Image{}, err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(tmp)
		return Image{}, fmt.Errorf("copying the data of %s aside: %w: %s", in.Node, err, strings.TrimSpace(string(out)))
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
