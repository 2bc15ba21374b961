package geo

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hatui/hatui/agent/raftmux"

	"github.com/hashicorp/raft"

	"github.com/hatui/hatui/protocol"
)

// TestMux sends raft connections, forwarded requests and junk to one
// listener on 127.0.0.x over real TCP.
func TestMux(t *testing.T) {
	inner, err := NewTCPStreamLayer("127.0.0.30:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := raftmux.New(inner, "geo", connForward, time.Second)
	applied := make(chan *command, 1)
	m.Start(func(c net.Conn) {
		serveForward(c, time.Second, func(_ context.Context, cmd *command) (*forwardReply, error) {
			applied <- cmd
			if cmd.Op == opAbort {
				return nil, protocol.Errorf(protocol.CodeRefused, "hint", "no failover is pending")
			}
			return &forwardReply{Result: &applyResult{Index: 42}}, nil
		})
	})
	t.Cleanup(func() { m.Close() })
	addr := raft.ServerAddress(inner.Addr().String())
	rl := m.Layer()

	// A raft connection reaches raft's Accept with its bytes intact.
	got := make(chan []byte, 1)
	go func() {
		c, err := rl.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b := make([]byte, 5)
		io.ReadFull(c, b)
		got <- b
	}()
	c, err := rl.Dial(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	if b := <-got; string(b) != "hello" {
		t.Errorf("raft received %q", b)
	}
	c.Close()

	// A forwarded request is answered.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := forward(ctx, m, time.Second, addr, forwardRequest{From: "b1", Cmd: &command{Op: opSync, Node: "b1"}})
	if err != nil || rep.Result == nil || rep.Result.Index != 42 {
		t.Fatalf("forward: %+v, %v", rep, err)
	}
	if cmd := <-applied; cmd.Op != opSync || cmd.Node != "b1" {
		t.Errorf("the leader got %+v", cmd)
	}
	rep, err = forward(ctx, m, time.Second, addr, forwardRequest{From: "b1", Cmd: &command{Op: opAbort}})
	<-applied
	if err != nil || rep.Err == nil || rep.Err.Code != protocol.CodeRefused || rep.Err.Hint != "hint" {
		t.Fatalf("a refusal did not come back typed: %+v, %v", rep, err)
	}

	// Junk and garbage requests are dropped without harming the listener.
	for _, junk := range [][]byte{{'X', 'Y'}, append([]byte{connForward}, "not json\n"...)} {
		j, err := net.Dial("tcp", string(addr))
		if err != nil {
			t.Fatal(err)
		}
		j.Write(junk)
		j.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(j)
		j.Close()
		if junk[0] == connForward && !containsBadRequest(b) {
			t.Errorf("a garbage request got %q, want a bad_request reply", b)
		}
	}
	if rep, err := forward(ctx, m, time.Second, addr, forwardRequest{From: "b1", Cmd: &command{Op: opSync}}); err != nil || rep.Result == nil {
		t.Fatalf("forward after junk: %+v, %v", rep, err)
	}
	<-applied

	// After close, raft's Accept ends and dials fail.
	m.Close()
	if _, err := rl.Accept(); !errors.Is(err, raftmux.ErrClosed) {
		t.Errorf("Accept after close: %v", err)
	}
}

func containsBadRequest(b []byte) bool {
	return strings.Contains(string(b), string(protocol.CodeBadRequest))
}

// BenchmarkForward measures one forwarded request and its reply over TCP
// on loopback: the cost a follower pays per renewal.
func BenchmarkForward(b *testing.B) {
	inner, err := NewTCPStreamLayer("127.0.0.31:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	m := raftmux.New(inner, "geo", connForward, time.Second)
	m.Start(func(c net.Conn) {
		serveForward(c, time.Second, func(context.Context, *command) (*forwardReply, error) {
			return &forwardReply{Result: &applyResult{Index: 1}}, nil
		})
	})
	b.Cleanup(func() { m.Close() })
	addr := raft.ServerAddress(inner.Addr().String())
	cmd := &command{Op: opRenew, Site: "a", Term: 1, Mode: ModeAuto}
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := forward(ctx, m, time.Second, addr, forwardRequest{From: "a1", Cmd: cmd}); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
