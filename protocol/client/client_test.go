package client

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/hatui/hatui/protocol"
)

// fakeAgent answers hello, floods every watch with changes, and answers
// status: enough to check the client's delivery rules.
func fakeAgent(t *testing.T, c net.Conn, changes int) {
	t.Helper()
	r, w := protocol.NewReader(c), protocol.NewWriter(c)
	go func() {
		for {
			env, err := r.Read()
			if err != nil {
				return
			}
			switch env.Type {
			case protocol.TypeHello:
				w.Send(protocol.TypeWelcome, env.ID, protocol.Welcome{Version: 1, Node: "fake"})
			case protocol.TypeWatch:
				w.Send(protocol.TypeSnapshot, env.ID, protocol.Snapshot{From: "fake"})
				go func(id uint64) {
					for i := 1; i <= changes; i++ {
						w.Send(protocol.TypeChange, id, protocol.Change{Seq: uint64(i),
							Events:   []protocol.Event{{Message: "e"}},
							Snapshot: &protocol.Snapshot{From: "fake", Deployment: "v"}})
					}
				}(env.ID)
			case protocol.TypeStatus:
				w.Send(protocol.TypeSnapshot, env.ID, protocol.Snapshot{From: "fake", Deployment: "status"})
			}
		}
	}()
}

func TestSlowWatcherDoesNotStallOtherReplies(t *testing.T) {
	a, b := net.Pipe()
	fakeAgent(t, b, 500)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Handshake(ctx, a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, changes, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Do not read changes; a status must still be answered.
	snap, err := c.Status(ctx, "")
	if err != nil || snap.Deployment != "status" {
		t.Fatalf("status while a watch is unread: %+v, %v", snap, err)
	}
	// Reading now yields the folded changes: the newest seq, all events.
	events := 0
	var last uint64
	for last < 500 {
		select {
		case ch := <-changes:
			events += len(ch.Events)
			last = ch.Seq
		case <-ctx.Done():
			t.Fatalf("changes stopped at seq %d", last)
		}
	}
	if events != 500 {
		t.Fatalf("folded changes carried %d events, want 500", events)
	}
}
