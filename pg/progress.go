package pg

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// copyProgress is one progress line of pg_basebackup -P.
type copyProgress struct {
	DoneKB  int64
	TotalKB int64 // 0 when pg_basebackup was not estimating
	Percent float64
}

// parseProgress reads a line such as
//
//	16387/38445 kB (42%), 0/1 tablespace (/path/base/5/16396           )
//
// and reports whether it was a progress line at all (pg_basebackup also
// prints diagnostics on the same stream).
func parseProgress(line string) (copyProgress, bool) {
	line = strings.TrimSpace(line)
	kb := strings.Index(line, " kB")
	if kb <= 0 {
		return copyProgress{}, false
	}
	nums := line[:kb]
	var p copyProgress
	if done, total, ok := strings.Cut(nums, "/"); ok {
		d, err1 := strconv.ParseInt(strings.TrimSpace(done), 10, 64)
		t, err2 := strconv.ParseInt(strings.TrimSpace(total), 10, 64)
		if err1 != nil || err2 != nil || d < 0 || t < 0 {
			return copyProgress{}, false
		}
		p.DoneKB, p.TotalKB = d, t
	} else {
		d, err := strconv.ParseInt(strings.TrimSpace(nums), 10, 64)
		if err != nil || d < 0 {
			return copyProgress{}, false
		}
		p.DoneKB = d
		return p, true
	}
	rest := line[kb+3:]
	if i := strings.Index(rest, "("); i >= 0 {
		if j := strings.Index(rest[i:], "%)"); j > 0 {
			if pct, err := strconv.ParseFloat(strings.TrimSpace(rest[i+1:i+j]), 64); err == nil && pct >= 0 && pct <= 100 {
				p.Percent = pct
				return p, true
			}
		}
	}
	if p.TotalKB > 0 {
		p.Percent = min(100, float64(p.DoneKB)*100/float64(p.TotalKB))
	}
	return p, true
}

// scanProgress splits pg_basebackup's stderr on both newlines and carriage
// returns (it uses the latter on a terminal), calling onProgress for
// progress lines and onLine for the rest, which are kept for error
// messages.
func scanProgress(r io.Reader, onProgress func(copyProgress), onLine func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if p, ok := parseProgress(line); ok {
			onProgress(p)
			continue
		}
		onLine(line)
	}
	// Drain on a scanner error (a line over 1 MiB) so the writer never blocks.
	_, _ = io.Copy(io.Discard, r)
}
