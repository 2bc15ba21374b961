package pg_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/pg"
	"github.com/hatui/hatui/pg/pgtest"
)

func postmasterPID(t *testing.T, s *pgtest.Server) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestFallbackImages takes images in rotation, then breaks the database
// and starts it from the newest image.
func TestFallbackImages(t *testing.T) {
	m := pgtest.NewMaster(t, "pbx-a1")
	m.Exec(t, "CREATE TABLE subscribers (id int PRIMARY KEY)")
	in := m.Instance()
	in.KeepImages = 2
	var taken []pg.Image
	for i := 1; i <= 3; i++ {
		m.Exec(t, "INSERT INTO subscribers VALUES ($1)", i)
		img, err := in.TakeImage(ctxT(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		taken = append(taken, img)
	}
	imgs, err := in.Images().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].ID != taken[2].ID || imgs[1].ID != taken[1].ID {
		t.Fatalf("images %v, want the two newest of %v, newest first", ids(imgs), ids(taken))
	}
	if _, err := os.Stat(taken[0].Dir); err == nil {
		t.Error("the oldest image was not pruned")
	}
	if imgs[0].Kind != pg.ImageScheduled || imgs[0].SystemID == "" || imgs[0].Timeline != 1 {
		t.Errorf("image metadata %+v", imgs[0])
	}

	// Written after the last image: lost when starting from it.
	m.Exec(t, "INSERT INTO subscribers VALUES (4)")
	m.Stop(t)
	if err := os.Remove(filepath.Join(m.DataDir, "global", "pg_control")); err != nil {
		t.Fatal(err)
	}
	if err := in.Start(ctxT(t, time.Minute)); err == nil {
		t.Fatal("the broken database started")
	}
	newest, err := in.RestoreNewest(ctxT(t, 2*time.Minute), pg.RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if newest.ID != taken[2].ID {
		t.Errorf("restored %s, want the newest image %s", newest.ID, taken[2].ID)
	}
	if n := m.QueryInt(t, "SELECT count(*) FROM subscribers"); n != 3 {
		t.Errorf("restored database has %d subscribers, want the image's 3", n)
	}
	if _, err := os.Stat(newest.Dir); err != nil {
		t.Errorf("the restored image itself is gone: %v", err)
	}
	imgs, _ = in.Images().List()
	var prev *pg.Image
	for i := range imgs {
		if imgs[i].Kind == pg.ImagePrevious {
			prev = &imgs[i]
		}
	}
	if prev == nil {
		t.Fatalf("the broken data directory was not kept as an image: %v", ids(imgs))
	}
	if _, err := os.Stat(filepath.Join(prev.Dir, "global", "pg_control")); err == nil {
		t.Error("the kept broken directory is not the broken one")
	}
	if left := siblings(t, m); len(left) != 0 {
		t.Errorf("left beside the data directory: %v", left)
	}
}

func ids(imgs []pg.Image) []string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.ID)
	}
	return out
}
