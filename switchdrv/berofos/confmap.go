package berofos

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// HTTP command groups and keys (devices.md). A write is
// "GET /?cmd=<group>&<key>=<value>..."; config.txt reports each value as
// "<group>_<key>=<value>".
const (
	GroupConfig   = 1 // scenario "sz" (0 fallback, 1 bypass), and defaults
	GroupSystem   = 2 // watchdog interval "wintv" and other settings
	GroupNetwork  = 3 // network settings, "pwd" (HTTP password on), "apwd" (admin password, set-only)
	GroupRelay    = 4 // relay "mode": 0 connects A–D, 1 connects A–B
	GroupPower    = 5 // power outlets, written as p=<n>&s=<0|1>, read as 5_p<n>
	GroupWatchdog = 6 // watchdog "wen" (enable) and "wstate" (0 off, 1 on, 2 failure)
)

// ConfigMagic is the first line of config.txt.
const ConfigMagic = "bnfos_confmap_magic"

// boolKeys hold booleans, which config.txt may report as "1" or "checked"
// (devices.md) and an unchecked box as "0" or nothing; they are written
// back as 1 or 0.
var boolKeys = map[string]bool{
	"sz": true, "mode": true, "rm": true, "p0": true, "p1": true,
	"dhcp": true, "pwd": true, "wen": true, "as": true, "men": true, "log": true,
}

// writeOnly keys never appear in config.txt and are not read back.
var writeOnly = map[string]bool{"apwd": true}

// ConfMap is a parsed config.txt (the vendor calls its keys the "confmap").
type ConfMap struct {
	Version string            // the magic's value, "0.1" on known firmware
	Values  map[string]string // "<group>_<key>" → value as the device wrote it
}

const maxConfigBytes = 64 << 10

// ParseConfMap parses the page served at /config.txt: the magic line
// "bnfos_confmap_magic=<version>" first, then "<group>_<key>=<value>"
// lines. Lines of another shape are skipped, because firmware adds lines an
// old driver need not understand; a page without the magic line is an error
// (it is a login page, an error page, or another device).
func ParseConfMap(page []byte) (ConfMap, error) {
	if len(page) > maxConfigBytes {
		return ConfMap{}, fmt.Errorf("config.txt is %d bytes, more than the %d a berofos serves", len(page), maxConfigBytes)
	}
	c := ConfMap{Values: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(make([]byte, 0, 4096), maxConfigBytes)
	sawMagic := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !sawMagic {
			if !ok || k != ConfigMagic {
				return ConfMap{}, fmt.Errorf("config.txt does not start with %s= (first line %.40q): not a berofos, or a login page", ConfigMagic, line)
			}
			c.Version = v
			sawMagic = true
			continue
		}
		if !ok {
			continue
		}
		g, name, ok := strings.Cut(k, "_")
		if !ok || name == "" {
			continue
		}
		if _, err := strconv.Atoi(g); err != nil {
			continue
		}
		c.Values[k] = v
	}
	if err := sc.Err(); err != nil {
		return ConfMap{}, fmt.Errorf("read config.txt: %w", err)
	}
	if !sawMagic {
		return ConfMap{}, errors.New("config.txt is empty: not a berofos, or a login page")
	}
	return c, nil
}

// Get returns the raw value of key in group.
func (c ConfMap) Get(group int, key string) (string, bool) {
	v, ok := c.Values[fmt.Sprintf("%d_%s", group, key)]
	return v, ok
}

// Bool returns a boolean key; ok is false when the key is absent or not a
// boolean the device is known to write.
func (c ConfMap) Bool(group int, key string) (val, ok bool) {
	v, present := c.Get(group, key)
	if !present {
		return false, false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "checked", "on":
		return true, true
	case "0", "", "off":
		return false, true
	}
	return false, false
}

// Group returns the keys of one group (without the "<group>_" prefix) with
// booleans normalised to 1 or 0, ready to be written back.
func (c ConfMap) Group(group int) map[string]string {
	pre := strconv.Itoa(group) + "_"
	g := map[string]string{}
	for k, v := range c.Values {
		name, ok := strings.CutPrefix(k, pre)
		if !ok {
			continue
		}
		g[name] = normalize(name, v)
	}
	return g
}

func normalize(key, v string) string {
	if !boolKeys[key] {
		return v
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "checked", "on":
		return "1"
	}
	return "0"
}

// WriteQuery returns the query string that writes a whole group: the
// group's current values with set applied. The whole group is written
// because one firmware resets the other values of a group when one is set
// (devices.md); "cmd" comes first and the keys follow sorted, so the same
// change always makes the same request.
func WriteQuery(group int, current map[string]string, set map[string]string) string {
	vals := maps.Clone(current)
	if vals == nil {
		vals = map[string]string{}
	}
	for k, v := range set {
		vals[k] = normalize(k, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cmd=%d", group)
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		b.WriteString("&" + url.QueryEscape(k) + "=" + url.QueryEscape(vals[k]))
	}
	return b.String()
}

// mismatch returns the keys of set that c does not show with the set value,
// ignoring write-only keys.
func mismatch(c ConfMap, group int, set map[string]string) []string {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if writeOnly[k] {
			continue
		}
		v, ok := c.Get(group, k)
		if !ok || normalize(k, v) != normalize(k, set[k]) {
			bad = append(bad, fmt.Sprintf("%d_%s=%q (want %q)", group, k, v, set[k]))
		}
	}
	return bad
}
