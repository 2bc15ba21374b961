package switchdrv

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options are a device's settings as written in a node's config file: flat
// string keys and values, so that every driver shares one config syntax.
type Options map[string]string

// OptionReader reads typed values from [Options], collects every problem
// rather than stopping at the first, and remembers which keys it read so
// that a misspelt key is reported instead of silently ignored.
//
//	r := switchdrv.NewOptionReader("berofos", opts)
//	addr := r.Required("address")
//	timeout := r.Duration("timeout", 3*time.Second)
//	if err := r.Done(); err != nil { ... }
type OptionReader struct {
	driver string
	opts   Options
	used   map[string]bool
	errs   []error
}

// NewOptionReader returns a reader of opts for the named driver.
func NewOptionReader(driver string, opts Options) *OptionReader {
	return &OptionReader{driver: driver, opts: opts, used: map[string]bool{}}
}

func (r *OptionReader) get(key string) (string, bool) {
	r.used[key] = true
	v, ok := r.opts[key]
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func (r *OptionReader) fail(key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("option %q: %s", key, fmt.Sprintf(format, args...)))
}

// String returns the value of key, or def when it is absent or empty.
func (r *OptionReader) String(key, def string) string {
	if v, ok := r.get(key); ok {
		return v
	}
	return def
}

// Raw returns the value of key untrimmed (for passwords and command
// strings, where spaces may matter), or def.
func (r *OptionReader) Raw(key, def string) string {
	r.used[key] = true
	if v, ok := r.opts[key]; ok && v != "" {
		return v
	}
	return def
}

// Required returns the value of key and records an error if it is missing.
func (r *OptionReader) Required(key string) string {
	v, ok := r.get(key)
	if !ok {
		r.fail(key, "is required")
	}
	return v
}

// Int returns key as an integer within [lo, hi], or def.
func (r *OptionReader) Int(key string, def, lo, hi int) int {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(key, "%q is not a whole number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// Duration returns key as a Go duration ("3s", "500ms") that must be
// positive, or def.
func (r *OptionReader) Duration(key string, def time.Duration) time.Duration {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(key, "%q is not a positive duration such as 3s or 500ms", v)
		return def
	}
	return d
}

// Bool returns key as a boolean (true/false, yes/no, on/off, 1/0), or def.
func (r *OptionReader) Bool(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	r.fail(key, "%q is not true or false", v)
	return def
}

// OneOf returns key if it is one of allowed, or def.
func (r *OptionReader) OneOf(key, def string, allowed ...string) string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		r.fail(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// Failf records a problem found while checking values together.
func (r *OptionReader) Failf(key, format string, args ...any) {
	r.fail(key, format, args...)
}

// Rest returns the options that were not read, for drivers that pass
// unknown keys through (fence agents), and marks them read.
func (r *OptionReader) Rest() Options {
	rest := Options{}
	for k, v := range r.opts {
		if !r.used[k] {
			rest[k] = v
			r.used[k] = true
		}
	}
	return rest
}

// Done returns an ErrConfig error listing every problem and every key that
// no call read, or nil.
func (r *OptionReader) Done() error {
	errs := slices.Clone(r.errs)
	for _, k := range slices.Sorted(maps.Keys(r.opts)) {
		if !r.used[k] {
			known := slices.Sorted(maps.Keys(r.used))
			errs = append(errs, fmt.Errorf("unknown option %q (known: %s)", k, strings.Join(known, ", ")))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return NewError(ErrConfig, r.driver, "read options", errors.Join(errs...))
}
