package health

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hatui/hatui/agent/resource/command"
)

// execProbe runs an operator's script: exit status 0 is healthy, anything
// else is a failure whose last output lines say why.
//
// Parameters:
//
//	path  absolute path of the program (required)
//	args  arguments, separated by white space (no shell quoting)
type execProbe struct {
	path string
	args []string
}

func newExec(check string, p map[string]string) (prober, error) {
	path := p["path"]
	const want = "an absolute path to an executable that exits 0 when healthy"
	switch {
	case path == "":
		return nil, paramError(check, "path", "missing", want)
	case !filepath.IsAbs(path):
		return nil, paramError(check, "path", fmt.Sprintf("%q is not an absolute path", path), want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, &ConfigError{Check: check, Key: "path", Problem: fmt.Sprintf("%s is not installed (%v)", path, err), Want: want, Err: err}
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, paramError(check, "path", fmt.Sprintf("%s is not an executable file (mode %s)", path, fi.Mode()), want+" (chmod +x it)")
	}
	return &execProbe{path: path, args: strings.Fields(p["args"])}, nil
}

func (e *execProbe) probe(ctx context.Context) (string, error) {
	res, err := command.Run(ctx, command.Cmd{Path: e.path, Args: e.args})
	if err != nil {
		return res.Summary(), err
	}
	if res.Code != 0 {
		return res.Summary(), fmt.Errorf("exit status %d: %s", res.Code, res.Summary())
	}
	return res.Summary(), nil
}
