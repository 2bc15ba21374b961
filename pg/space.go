package pg

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hatui/hatui/protocol"
	"golang.org/x/sys/unix"
)

// AssumedCopyRate is the copy speed a space estimate assumes when the
// re-seed has no MaxRate, to guess how much WAL the master writes during
// the copy (pg_basebackup -X stream keeps all of it in the new copy).
const AssumedCopyRate = 50 << 20 // bytes per second

// SpaceCheck says whether a re-seed's copy fits beside the data
// directory. The copy and the fallback image share one file system (the
// previous data directory becomes the image by rename, taking no new
// space), so the copy alone must fit in what is free there.
type SpaceCheck struct {
	// Dir is where the copy is written: the data directory's parent.
	Dir string
	// DatabaseBytes is the master's databases (pg_database_size), WALBytes
	// the WAL it is expected to write during the copy, MarginBytes 10 %
	// (at least 64 MiB) for what the estimate misses.
	DatabaseBytes int64
	WALBytes      int64
	MarginBytes   int64
	// NeededBytes is the sum; FreeBytes what the server's user may write.
	NeededBytes int64
	FreeBytes   int64
	// Prune are the fallback images this re-seed's rotation would remove
	// anyway at its end; pruning them first frees PruneBytes.
	Prune      []Image
	PruneBytes int64
	// ImagesBytes is what every fallback image takes.
	ImagesBytes int64
	ImagesDir   string
	Images      int
}

// Fits reports whether the copy fits without pruning.
func (c *SpaceCheck) Fits() bool { return c.NeededBytes <= c.FreeBytes }

// FitsAfterPrune reports whether it fits once Prune is pruned.
func (c *SpaceCheck) FitsAfterPrune() bool { return c.NeededBytes <= c.FreeBytes+c.PruneBytes }

// String says how much is needed and free, for messages.
func (c *SpaceCheck) String() string {
	return fmt.Sprintf("the copy needs about %s (databases %s, WAL during the copy %s, margin %s) in %s, where %s is free",
		Bytes(c.NeededBytes), Bytes(c.DatabaseBytes), Bytes(c.WALBytes), Bytes(c.MarginBytes), c.Dir, Bytes(c.FreeBytes))
}

// pruneNote says which images are pruned to make room.
func (c *SpaceCheck) pruneNote() string {
	ids := make([]string, len(c.Prune))
	for i, img := range c.Prune {
		ids[i] = img.ID
	}
	return fmt.Sprintf("pruning fallback image(s) %s first (%s) makes room: this re-seed's rotation would remove them anyway",
		strings.Join(ids, ", "), Bytes(c.PruneBytes))
}

// refusal is the refusal for a copy that does not fit.
func (c *SpaceCheck) refusal(op, node string) *RefusedError {
	hint := fmt.Sprintf("make room on the file system of %s: ", c.Dir)
	switch {
	case c.Images > 0 && c.NeededBytes <= c.FreeBytes+c.ImagesBytes:
		hint += fmt.Sprintf("deleting fallback images in %s (%d, %s) would make room (keep the newest you trust; lower [database.images] keep so rotation keeps fewer)", c.ImagesDir, c.Images, Bytes(c.ImagesBytes))
	case c.Images > 0:
		hint += fmt.Sprintf("prune fallback images in %s (%d, %s) and free other space, ", c.ImagesDir, c.Images, Bytes(c.ImagesBytes))
		fallthrough
	default:
		hint += "or move data_dir and images.dir together to a larger file system (they must share one)"
	}
	return refuse(op, node, ReasonNoSpace, false, hint, "%s: nothing was stopped", c)
}

// Bytes renders a byte count with binary units, as the console does.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// freeSpace returns what an unprivileged user may still write on the file
// system of path, and its size.
func freeSpace(path string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("reading the free space of %s: %w", path, err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// parseRate reads pg_basebackup's --max-rate ("50M", "800k", "1000" kB/s)
// into bytes per second; 0 when empty or unreadable.
func parseRate(s string) int64 {
	mult := int64(1024)
	switch {
	case strings.HasSuffix(s, "M"):
		mult, s = 1024*1024, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "k"):
		s = strings.TrimSuffix(s, "k")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n * mult
}

// CheckSpace estimates a re-seed's copy from master and compares it with
// the free space beside the data directory. It samples the master's WAL
// position twice, sample apart, to estimate the WAL written during the
// copy. It changes nothing.
func (in *Instance) CheckSpace(ctx context.Context, master Peer, maxRate string, sample time.Duration) (*SpaceCheck, error) {
	c := &SpaceCheck{Dir: filepath.Dir(filepath.Clean(in.DataDir)), ImagesDir: in.imagesDir()}
	db, conn, err := open(ctx, master.ConnInfo)
	if err != nil {
		return nil, fmt.Errorf("estimating the copy from %s: %w", master.Node, err)
	}
	defer db.Close()
	defer conn.Close()
	var lsn1, lsn2 LSN
	var t1, t2 time.Time
	err = conn.QueryRowContext(ctx, `SELECT sum(pg_database_size(oid))::bigint, pg_current_wal_lsn()::text, clock_timestamp()
		FROM pg_database WHERE datallowconn`).Scan(&c.DatabaseBytes, &lsn1, &t1)
	if err != nil {
		return nil, fmt.Errorf("estimating the copy from %s: reading its database sizes (the peer's role needs CONNECT on every database, or pg_read_all_stats): %w", master.Node, err)
	}
	if sample > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sample):
		}
		if err := conn.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text, clock_timestamp()`).Scan(&lsn2, &t2); err != nil {
			return nil, fmt.Errorf("estimating the copy from %s: %w", master.Node, err)
		}
		rate := parseRate(maxRate)
		if rate == 0 {
			rate = AssumedCopyRate
		}
		copySeconds := float64(c.DatabaseBytes) / float64(rate)
		if dt := t2.Sub(t1).Seconds(); dt > 0 {
			c.WALBytes = int64(float64(lsn2.Sub(lsn1)) / dt * copySeconds)
		}
	}
	c.MarginBytes = max(64<<20, c.DatabaseBytes/10)
	c.NeededBytes = c.DatabaseBytes + c.WALBytes + c.MarginBytes
	if c.FreeBytes, _, err = freeSpace(c.Dir); err != nil {
		return nil, err
	}
	if c.Fits() {
		return c, nil
	}
	imgs, err := in.Images().List()
	if err != nil {
		return nil, err
	}
	c.Images = len(imgs)
	// After the re-seed, the previous data directory is one image more,
	// and rotation keeps the newest Keep: the oldest beyond Keep-1 of
	// today's go in any case.
	keep := max(1, in.keepImages())
	for i, img := range imgs {
		n := dirBytes(img.Dir)
		c.ImagesBytes += n
		if i >= keep-1 {
			c.Prune = append(c.Prune, img)
			c.PruneBytes += n
		}
	}
	return c, nil
}

// WALDisk reads the file system that holds the data directory's pg_wal
// (following the link when pg_wal lives on a disk of its own).
func (in *Instance) WALDisk() (*protocol.Disk, error) {
	path := filepath.Join(in.DataDir, "pg_wal")
	free, total, err := freeSpace(path)
	if err != nil {
		return nil, err
	}
	d := &protocol.Disk{Path: path, TotalBytes: total, FreeBytes: free}
	if total > 0 {
		d.UsedPercent = 100 * float64(total-free) / float64(total)
	}
	return d, nil
}
