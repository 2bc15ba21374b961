package sshdial

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/console/sshdial/sshtest"
)

// recipeSnippet is the sshd_config.d file shipped for nodes.
const recipeSnippet = "../../recipes/sshd/hatui.conf"

// TestRecipeSnippet installs recipes/sshd/hatui.conf the way Debian lays
// sshd_config out (Include of sshd_config.d at the top) into a node
// hardened with AllowStreamLocalForwarding no, and checks the console gets
// through for members of the group, and not without the snippet. The test
// logs in as root, so the snippet's group is swapped for root's group.
func TestRecipeSnippet(t *testing.T) {
	b, err := os.ReadFile(recipeSnippet)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Match Group hatui\n") {
		t.Fatalf("%s no longer has the Match Group hatui line this test adapts", recipeSnippet)
	}
	confd := filepath.Join(t.TempDir(), "sshd_config.d")
	os.Mkdir(confd, 0o755)
	snippet := strings.Replace(string(b), "Match Group hatui\n", "Match Group root\n", 1)
	os.WriteFile(filepath.Join(confd, "hatui.conf"), []byte(snippet), 0o644)

	hardened := []string{"Include " + confd + "/*.conf", "AllowStreamLocalForwarding no"}
	t.Run("with snippet", func(t *testing.T) {
		r := newRig(t, sshtest.Config{Settings: hardened})
		d := newDialer(t, r.target(), r.opts())
		nc, err := d.Dial(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		exchange(t, nc, "recipe")
	})
	t.Run("without snippet", func(t *testing.T) {
		r := newRig(t, sshtest.Config{Settings: hardened[1:]})
		d := newDialer(t, r.target(), r.opts())
		_, err := d.Dial(testCtx(t))
		wantKind(t, err, KindSocket, ErrSocket, "refused to forward")
	})
}

// TestRecipeCheckCommand runs the check the README gives operators,
// ssh -N -L /tmp/x.sock:<agent socket>, with OpenSSH's client, and talks
// through the forwarded socket.
func TestRecipeCheckCommand(t *testing.T) {
	sshBin := sshtest.RequireTool(t, "ssh")
	r := newRig(t, sshtest.Config{})
	dir, err := os.MkdirTemp("", "chk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	local := filepath.Join(dir, "x.sock")
	cmd := exec.Command(sshBin, "-F", "none", "-N", "-L", local+":"+r.sock,
		"-i", r.srv.UserKeyPath, "-p", fmt.Sprint(r.srv.Port),
		"-o", "UserKnownHostsFile="+r.kh, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", r.srv.User+"@"+r.srv.Host)
	out := &strings.Builder{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	var c net.Conn
	for {
		if c, err = net.Dial("unix", local); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ssh -L did not create %s: %s", local, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, "check")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo: check\n" {
		t.Fatalf("through ssh -L: %q, %v (ssh: %s)", line, err, out)
	}
}
