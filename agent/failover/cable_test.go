package failover

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cable is a null-modem cable between two serial ports: two pty pairs
// whose masters are joined, so that each node opens a real tty (a pty
// slave) with tarm/serial. Cutting the cable drops the bytes, as pulling
// the plug would.
type cable struct {
	paths  [2]string
	master [2]*os.File
	slave  [2]*os.File // held open so the masters never read EIO between sessions
	cut    atomic.Bool
	wg     sync.WaitGroup
}

func newCable(t testing.TB) *cable {
	t.Helper()
	c := &cable{}
	for i := range 2 {
		m, p, err := openPTY()
		if err != nil {
			t.Fatalf("opening a pty: %v", err)
		}
		s, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOCTTY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := makeRaw(s); err != nil {
			t.Fatal(err)
		}
		c.master[i], c.slave[i], c.paths[i] = m, s, p
	}
	for i := range 2 {
		c.wg.Add(1)
		go c.pump(c.master[i], c.master[1-i])
	}
	t.Cleanup(func() {
		for i := range 2 {
			c.master[i].Close()
			c.slave[i].Close()
		}
		c.wg.Wait()
	})
	return c
}

func (c *cable) pump(from, to *os.File) {
	defer c.wg.Done()
	buf := make([]byte, 512)
	for {
		n, err := from.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.EIO) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		if !c.cut.Load() {
			to.Write(buf[:n])
		}
	}
}

// noise writes garbage towards end i, as a bad cable would.
func (c *cable) noise(i int, b []byte) { c.master[i].Write(b) }

func openPTY() (*os.File, string, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, "", err
	}
	rc, err := m.SyscallConn()
	if err != nil {
		m.Close()
		return nil, "", err
	}
	var n int
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		m.Close()
		return nil, "", err
	}
	return m, "/dev/pts/" + strconv.Itoa(n), nil
}

func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		tio, e := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if e != nil {
			ioErr = e
			return
		}
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
	})
	if err != nil {
		return err
	}
	return ioErr
}

// netcut cuts traffic between pairs of loopback addresses with nftables,
// at the input hook: the sender's packets leave and are dropped on
// arrival, as on a cut cable (an output drop would make sends fail with
// EPERM, which no real cut does). Raft, Serf and the NIC path all see it.
type netcut struct {
	t     testing.TB
	table string
	mu    sync.Mutex
	pairs map[[2]string]bool
}

var netcutSeq atomic.Int64

// needNetcut returns a netcut, skipping the test without root or nft
// (failing in CI, which has both).
func needNetcut(t testing.TB) *netcut {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "" {
			t.Skip("network cuts need root and nft (apt-get install nftables); skipping outside CI")
		}
		t.Fatalf("network cuts need root and nft: %v", err)
	}
	n := &netcut{t: t, table: fmt.Sprintf("hatui_failover_%d_%d", os.Getpid(), netcutSeq.Add(1)), pairs: map[[2]string]bool{}}
	n.apply()
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", n.table).Run() })
	return n
}

func (n *netcut) apply() {
	n.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\nflush table inet %s\n", n.table, n.table)
	fmt.Fprintf(&b, "table inet %s {\n chain in {\n  type filter hook input priority 0; policy accept;\n", n.table)
	for p := range n.pairs {
		fmt.Fprintf(&b, "  ip saddr %s ip daddr %s drop\n", p[0], p[1])
	}
	b.WriteString(" }\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("nft: %v: %s\n%s", err, out, b.String())
	}
}

// cut drops traffic both ways between a and each of others.
func (n *netcut) cut(a string, others ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range others {
		n.pairs[[2]string{a, o}] = true
		n.pairs[[2]string{o, a}] = true
	}
	n.apply()
}

// heal removes every cut.
func (n *netcut) heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.pairs)
	n.apply()
}
