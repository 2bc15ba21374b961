package enroll

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/hatui/hatui/agent"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/protocol"
)

// feature serves join tokens on the node the deployment was bootstrapped
// on, for as long as its store exists.
type feature struct {
	srv *Server
}

// New is the agent feature: on the first node it serves the join
// listener; elsewhere it does nothing.
func New(h agent.Host) (agent.Feature, error) {
	s, err := OpenStore(filepath.Join(h.Config().StateDir, StoreFile))
	if errors.Is(err, os.ErrNotExist) {
		return &feature{}, nil
	}
	if err != nil {
		return nil, err
	}
	srv, err := Serve(s, h.Logger())
	if err != nil {
		return nil, err
	}
	h.Logger().Info("serving join tokens", "listen", srv.Addr())
	return &feature{srv: srv}, nil
}

func (f *feature) Verbs() []agent.Verb { return nil }

func (f *feature) Plan(context.Context, protocol.Action, localapi.Caller) (localapi.Job, error) {
	return nil, errors.New("enroll carries out no verbs")
}

func (f *feature) Report(*protocol.Snapshot) {}

func (f *feature) Close() error {
	if f.srv == nil {
		return nil
	}
	return f.srv.Close()
}
