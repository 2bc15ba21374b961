package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hatui/hatui/agent/audit"
	"github.com/hatui/hatui/agent/history"
	"github.com/hatui/hatui/agent/localapi"
	"github.com/hatui/hatui/protocol"
)

// Status implements localapi.Backend.
func (a *Agent) Status(ctx context.Context, req protocol.StatusRequest, c localapi.Caller) (*protocol.Snapshot, error) {
	node := req.Node
	if node == "" || node == a.cfg.Node {
		return a.Snapshot(req.Scope), nil
	}
	m, err := a.member(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Peer.Timeout.Duration)
	defer cancel()
	conn, err := a.forwardConn(ctx, m, c)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.StatusRequest(ctx, req)
}

// nodeVerbs are the actions that one node's own agent carries out on its
// own flags.
var nodeVerbs = map[string]func(args []string) (func(*Flags), string, error){
	"standby": func(args []string) (func(*Flags), string, error) {
		return func(f *Flags) { f.Standby = true }, "in standby", nil
	},
	"online": func(args []string) (func(*Flags), string, error) {
		return func(f *Flags) { f.Standby = false }, "online", nil
	},
	"maintenance": func(args []string) (func(*Flags), string, error) {
		on := true
		if len(args) > 1 {
			switch args[1] {
			case "on":
			case "off":
				on = false
			default:
				return nil, "", protocol.Errorf(protocol.CodeUsage, "usage: maintenance NODE [on|off]", "%q is neither on nor off", args[1])
			}
		}
		word := "in maintenance (resources unmanaged)"
		if !on {
			word = "out of maintenance (resources managed)"
		}
		return func(f *Flags) { f.Maintenance = on }, word, nil
	},
}

// Plan implements localapi.Backend.
func (a *Agent) Plan(ctx context.Context, act protocol.Action, c localapi.Caller) (localapi.Job, error) {
	job, err := a.plan(ctx, act, c)
	if err != nil {
		a.audited(act, c, "refused", err.Error())
	}
	return job, err
}

func (a *Agent) plan(ctx context.Context, act protocol.Action, c localapi.Caller) (localapi.Job, error) {
	if !c.MayAct() && !act.DryRun {
		return nil, unauthorized(c)
	}
	e, ok := a.verb(act.Verb)
	if !ok {
		return nil, protocol.Errorf(protocol.CodeUnknownVerb, "run 'help' in hatui to list the verbs",
			"this agent does not know the action %q", act.Verb)
	}
	target, err := e.verb.Route(a.Deployment(), act)
	if err != nil {
		return nil, err
	}
	if target == "" || target == a.cfg.Node {
		job, err := e.f.Plan(ctx, act, c)
		if err != nil || job == nil {
			return job, err
		}
		if _, builtin := e.f.(flagFeature); builtin {
			return job, nil // the flags audit themselves
		}
		return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
			res := job(ctx, progress)
			result := "ok"
			if !res.OK {
				result = "failed"
			}
			a.audited(act, c, result, res.Message)
			return res
		}, nil
	}
	m, err := a.member(target)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithTimeout(ctx, a.cfg.Peer.Timeout.Duration)
	conn, err := a.forwardConn(fctx, m, c)
	cancel()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		defer conn.Close()
		progress(protocol.Progress{Step: "forward", Message: fmt.Sprintf("asking %s's agent", target), Percent: -1})
		res, err := conn.Do(ctx, act, progress)
		if err != nil && res.Error == nil {
			res = protocol.Result{OK: false, Message: err.Error(), Error: protocol.AsError(err)}
		}
		return res
	}, nil
}

// planFlags plans a node verb for this node.
func (a *Agent) planFlags(act protocol.Action, c localapi.Caller) (localapi.Job, error) {
	verb := nodeVerbs[act.Verb]
	if len(act.Args) < 1 || (act.Verb != "maintenance" && len(act.Args) != 1) || len(act.Args) > 2 {
		return nil, protocol.Errorf(protocol.CodeUsage, fmt.Sprintf("usage: %s NODE", act.Verb),
			"%s takes one node name, got %d arguments", act.Verb, len(act.Args))
	}
	change, word, err := verb(act.Args)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, progress func(protocol.Progress)) protocol.Result {
		return a.setFlags(act, c, change, word)
	}, nil
}

// setFlags changes this node's flags, persists them, and publishes them.
func (a *Agent) setFlags(act protocol.Action, c localapi.Caller, change func(*Flags), word string) protocol.Result {
	before := a.flags.get()
	after, err := a.flags.update(func(f *Flags) { change(f); f.By = c.User })
	if err != nil {
		res := protocol.Result{OK: false, Message: err.Error(),
			Error: protocol.Errorf(protocol.CodeFailed, "check the state directory's disk and permissions", "%v", err)}
		a.audited(act, c, "failed", err.Error())
		return res
	}
	if err := a.pool.SetTags(a.tags(a.pool.LocalTags()[tagPeer])); err != nil {
		// The flag is saved; gossip will carry it after the next restart
		// at the latest. Say so rather than pretend.
		msg := fmt.Sprintf("%s is %s locally, but publishing it failed: %v", a.cfg.Node, word, err)
		a.audited(act, c, "failed", msg)
		return protocol.Result{OK: false, Message: msg, Error: protocol.Errorf(protocol.CodeFailed, "retry the action", "%s", msg)}
	}
	msg := fmt.Sprintf("%s is %s", a.cfg.Node, word)
	if before.Standby == after.Standby && before.Maintenance == after.Maintenance {
		msg += " (it already was)"
	}
	who := c.User
	if who == "" {
		who = "unknown user"
	}
	a.mu.Lock()
	a.change = time.Now()
	a.mu.Unlock()
	a.record(protocol.Event{Node: a.cfg.Node, Kind: "action", Severity: protocol.SevInfo,
		Message: fmt.Sprintf("%s (by %s)", msg, who)})
	a.audited(act, c, "ok", msg)
	return protocol.Result{OK: true, Message: msg}
}

func (a *Agent) audited(act protocol.Action, c localapi.Caller, result, detail string) {
	now := time.Now().UTC()
	err := a.audit.Append(audit.Entry{
		Time: now, Node: a.cfg.Node, User: c.User, Via: c.Forwarded,
		Action: act.String(), Result: result, Detail: detail,
	})
	if err != nil {
		a.logger.Printf("audit log: %v", err)
	}
	// The audit entry is an event too, so that it is relayed to every
	// agent and kept in each one's history: who did what is readable
	// from any node, after any restart.
	who := c.User
	if who == "" {
		who = "unknown user"
	}
	msg := fmt.Sprintf("%s: %s → %s", who, act.String(), result)
	if detail != "" {
		msg += " (" + detail + ")"
	}
	sev := protocol.SevInfo
	if result != "ok" {
		sev = protocol.SevWarning
	}
	a.record(protocol.Event{Time: now, Node: a.cfg.Node, Kind: "audit", Severity: sev, Message: msg, User: c.User, Result: result})
}

// maxHistory caps one history answer.
const maxHistory = 5000

// History implements localapi.Backend: the deployment's past events and
// audit entries as this agent recorded them (its own and those its peers
// reported to it), across restarts.
func (a *Agent) History(ctx context.Context, req protocol.HistoryRequest, c localapi.Caller) (*protocol.History, error) {
	limit := req.Limit
	if limit <= 0 || limit > maxHistory {
		limit = maxHistory
	}
	evs, err := a.hist.Query(history.Query{Since: req.Since, Node: req.Node, Limit: limit + 1})
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeFailed, "check the state directory's disk and permissions", "%v", err)
	}
	h := &protocol.History{Events: evs}
	if len(evs) > limit {
		h.Events, h.Truncated = evs[1:], true
	}
	if h.Events == nil {
		h.Events = []protocol.Event{}
	}
	return h, nil
}

// unauthorized refuses an action to a caller who may only watch, naming
// the groups that may act.
func unauthorized(c localapi.Caller) error {
	who := c.User
	if who == "" {
		who = "this user"
	}
	if len(c.Needs) == 0 {
		return protocol.Errorf(protocol.CodeUnauthorized, "ask an operator to do it",
			"%s may watch but not act on this deployment", who)
	}
	groups := strings.Join(c.Needs, " or ")
	return protocol.Errorf(protocol.CodeUnauthorized,
		fmt.Sprintf("ask an administrator to add %s to %s (usermod -aG %s %s), then log in again; dry runs are allowed", who, groups, c.Needs[0], who),
		"%s may watch but not act: actions need membership of %s (socket.operators)", who, groups)
}
