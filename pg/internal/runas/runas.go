// Package runas runs PostgreSQL's programs as the operating-system user that
// owns the cluster.
//
// initdb, pg_ctl and postgres refuse to run as root, and files that
// pg_basebackup writes must belong to the server's user, so an agent running
// as root switches to that user for every such program. A process that is
// not root runs them as itself: it can only own clusters that are its own.
package runas

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Account is an operating-system user resolved to numbers.
type Account struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Lookup resolves name. An empty name means the current user.
func Lookup(name string) (Account, error) {
	var u *user.User
	var err error
	if name == "" {
		u, err = user.Current()
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return Account{}, fmt.Errorf("looking up user %q: %w (create the user or name another in the configuration)", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Account{}, fmt.Errorf("user %q has non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return Account{}, fmt.Errorf("user %q has non-numeric gid %q", name, u.Gid)
	}
	return Account{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}, nil
}

// Effective returns the account programs will run as: name when this
// process is root, otherwise the current user whatever name says.
func Effective(name string) (Account, error) {
	if os.Geteuid() != 0 {
		return Lookup("")
	}
	if name == "" {
		name = "postgres"
	}
	return Lookup(name)
}

// Command builds a command that runs as the effective account for name,
// with a C locale so that the output of pg_controldata and pg_basebackup
// can be parsed whatever the machine's language.
func Command(ctx context.Context, name, program string, args ...string) (*exec.Cmd, error) {
	acct, err := Effective(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = environ(acct)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 && acct.UID != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid: uint32(acct.UID), Gid: uint32(acct.GID), NoSetGroups: true,
		}
	}
	if acct.Home != "" {
		// The server's user may not be allowed into the agent's working
		// directory; its home is a place it can always stand in.
		if st, err := os.Stat(acct.Home); err == nil && st.IsDir() {
			cmd.Dir = acct.Home
		} else {
			cmd.Dir = "/"
		}
	}
	return cmd, nil
}

// environ is the current environment with locale and HOME fixed for acct.
func environ(acct Account) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LC_ALL", "LANG", "LANGUAGE", "LC_MESSAGES", "HOME", "USER", "LOGNAME", "PGDATA":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C", "USER="+acct.Name, "LOGNAME="+acct.Name)
	if acct.Home != "" {
		env = append(env, "HOME="+acct.Home)
	}
	return env
}

// Chown gives path to the effective account for name when this process is
// root; otherwise it does nothing, as the files are already the caller's.
func Chown(path, name string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	acct, err := Effective(name)
	if err != nil {
		return err
	}
	if err := os.Lchown(path, acct.UID, acct.GID); err != nil {
		return fmt.Errorf("giving %s to %s: %w", path, acct.Name, err)
	}
	return nil
}

// Output runs cmd and returns its standard output; on failure the error
// carries the program's standard error, which is where PostgreSQL's tools
// explain themselves.
func Output(cmd *exec.Cmd) ([]byte, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		if msg != "" {
			return out, fmt.Errorf("%s: %w: %s", cmd.Path, err, msg)
		}
		return out, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	return out, nil
}
