//go:build !linux

package resource

func newVIP(spec Spec) (driver, error) {
	if _, err := parseVIP(spec); err != nil {
		return nil, err
	}
	return nil, &ConfigError{Resource: spec.Name, Key: "type", Problem: "vip resources need Linux (rtnetlink and AF_PACKET)",
		Want: "a Linux node"}
}
