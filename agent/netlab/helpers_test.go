//go:build linux

package netlab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpEcho listens on addr inside h and echoes every connection until the
// test ends.
func tcpEcho(t testing.TB, h *Host, addr string) {
	t.Helper()
	var ln net.Listener
	if err := h.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, h, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// tcpRoundTrip dials addr from inside h and checks that a message comes
// back, all within timeout.
func tcpRoundTrip(h *Host, addr string, timeout time.Duration) error {
	var c net.Conn
	if err := h.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	msg := []byte("hello from " + h.Name())
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo returned %q, want %q", got, msg)
	}
	return nil
}

// udpEcho answers every datagram on addr inside h with the same bytes,
// until the test ends.
func udpEcho(t testing.TB, h *Host, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := h.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on udp %s in %s: %v", addr, h, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpPings sends count numbered datagrams from inside h to an echo at
// addr, one every gap, and returns the round trip time of each (pings
// still in flight overlap). A ping without an answer within timeout fails
// the test.
func udpPings(t testing.TB, h *Host, addr string, count int, gap, timeout time.Duration) []time.Duration {
	t.Helper()
	var c net.Conn
	if err := h.Do(func() (err error) {
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("udp dial %s from %s: %v", addr, h, err)
	}
	defer c.Close()
	sent := make([]time.Time, count)
	rtts := make([]time.Duration, count)
	got := make([]bool, count)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for n := 0; n < count; {
			c.SetReadDeadline(time.Now().Add(timeout))
			k, err := c.Read(buf)
			if err != nil {
				done <- fmt.Errorf("%d of %d pings answered: %w", n, count, err)
				return
			}
			now := time.Now()
			if k < 4 {
				continue
			}
			i := int(binary.BigEndian.Uint32(buf))
			if i < count && !got[i] {
				got[i] = true
				rtts[i] = now.Sub(sent[i])
				n++
			}
		}
		done <- nil
	}()
	msg := make([]byte, 32)
	for i := range count {
		binary.BigEndian.PutUint32(msg, uint32(i))
		sent[i] = time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("udp send from %s: %v", h, err)
		}
		if gap > 0 {
			time.Sleep(gap) // pacing the pings, not waiting for a condition
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("udp pings from %s to %s: %v", h, addr, err)
	}
	return rtts
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// procGone reports whether pid no longer runs: absent, or a zombie that
// nobody reaped yet (its parent may be a container's init that never
// reaps).
func procGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// netnsNames lists the named network namespaces.
func netnsNames(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
