package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// node is one peer listener with its dialer.
func node(t *testing.T, keys [][]byte) (*Server, *Dialer) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", keys, func(c net.Conn) { c.Close() })
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDialer(keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(); s.Close() })
	return s, d
}

// TestRaftOverStreams forms a three-voter raft group whose only transport
// is the peer channel, and replicates an entry.
func TestRaftOverStreams(t *testing.T) {
	k := [][]byte{newKey(t)}
	var rafts []*raft.Raft
	var conf raft.Configuration
	var streams []*Stream
	for range 3 {
		s, d := node(t, k)
		st, err := NewStream(s, d, "hatui-raft-test@hatui", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(st.Addr().String()), Address: raft.ServerAddress(st.Addr().String())})
	}
	fsms := make([]*countFSM, 3)
	for i, st := range streams {
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(st.Addr().String())
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
		rc.LogOutput = io.Discard
		tr := raft.NewNetworkTransport(st, 3, time.Second, io.Discard)
		store := raft.NewInmemStore()
		fsms[i] = &countFSM{}
		if err := raft.BootstrapCluster(rc, store, store, raft.NewInmemSnapshotStore(), tr, conf); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(rc, fsms[i], store, store, raft.NewInmemSnapshotStore(), tr)
		if err != nil {
			t.Fatal(err)
		}
		rafts = append(rafts, r)
		t.Cleanup(func() { r.Shutdown().Error() })
	}
	var leader *raft.Raft
	waitUntil(t, 10*time.Second, func() bool {
		for _, r := range rafts {
			if r.State() == raft.Leader {
				leader = r
				return true
			}
		}
		return false
	})
	if err := leader.Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply through the leader: %v", err)
	}
	waitUntil(t, 10*time.Second, func() bool {
		for _, f := range fsms {
			if f.get() != 1 {
				return false
			}
		}
		return true
	})
}

// TestStreamRefusesStrangers: a node with another key cannot open a
// stream channel, and an unregistered channel type is refused by name.
func TestStreamRefusesStrangers(t *testing.T) {
	k := [][]byte{newKey(t)}
	s, d := node(t, k)
	if _, err := NewStream(s, d, "hatui-raft-test@hatui", s.Addr().String()); err != nil {
		t.Fatal(err)
	}
	_, stranger := node(t, [][]byte{newKey(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := stranger.DialChannel(ctx, s.Addr().String(), "hatui-raft-test@hatui"); err == nil || !strings.Contains(err.Error(), "gossip keyring") {
		t.Fatalf("a stranger opened a stream channel: %v", err)
	}
	if _, err := d.DialChannel(ctx, s.Addr().String(), "hatui-other@hatui"); err == nil || !strings.Contains(err.Error(), "not served") {
		t.Fatalf("an unregistered channel type: got %v, want refused as not served", err)
	}
	// The refusal did not spoil the pooled connection.
	c, err := d.DialChannel(ctx, s.Addr().String(), "hatui-raft-test@hatui")
	if err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
	c.Close()
}

// TestChannelDeadlines: an expired read deadline returns a timeout and
// leaves the channel usable; data sent later is still read.
func TestChannelDeadlines(t *testing.T) {
	k := [][]byte{newKey(t)}
	s, d := node(t, k)
	st, err := NewStream(s, d, "hatui-raft-test@hatui", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := st.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(b)
		}
	}()
	c, err := st.Dial(raft.ServerAddress(s.Addr().String()), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: got %v, want a timeout", err)
	}
	c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
		t.Fatalf("after the timeout: got %q, %v", b, err)
	}
}

func waitUntil(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("condition not met after %s", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type countFSM struct {
	mu sync.Mutex
	n  int
}

func (f *countFSM) Apply(*raft.Log) any { f.mu.Lock(); f.n++; f.mu.Unlock(); return nil }
func (f *countFSM) get() int            { f.mu.Lock(); defer f.mu.Unlock(); return f.n }
func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, fmt.Errorf("not needed")
}
func (f *countFSM) Restore(io.ReadCloser) error { return nil }
