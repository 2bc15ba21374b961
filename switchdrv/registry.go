package switchdrv

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Factory opens a device from its options. It checks the options and may
// do no I/O: a device that is down at start-up must not stop the agent from
// starting, so drivers connect on first use.
type Factory func(opts Options) (Device, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a driver available to [Open] under name. Drivers call it
// from init; it panics on a duplicate or empty name, because that is a
// programming error found at start-up, never a runtime condition.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if name == "" || f == nil {
		panic("switchdrv: Register needs a name and a factory")
	}
	if _, dup := registry[name]; dup {
		panic("switchdrv: driver " + name + " registered twice")
	}
	registry[name] = f
}

// Drivers returns the registered drivers' names, sorted.
func Drivers() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Open opens a device with the named driver.
func Open(driver string, opts Options) (Device, error) {
	registryMu.RLock()
	f, ok := registry[driver]
	registryMu.RUnlock()
	if !ok {
		return nil, NewError(ErrConfig, driver, "open", fmt.Errorf("no driver named %q", driver)).
			WithHint(fmt.Sprintf("use one of: %s (is switchdrv/drivers imported?)", strings.Join(Drivers(), ", ")))
	}
	return f(opts)
}

// OpenLineSwitch opens a device and returns it as a line switch. The device
// is closed again if it is not one.
func OpenLineSwitch(driver string, opts Options) (LineSwitch, error) {
	d, err := Open(driver, opts)
	if err != nil {
		return nil, err
	}
	s, err := AsLineSwitch(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// OpenPowerSwitch opens a device and returns it as a power switch. The
// device is closed again if it is not one.
func OpenPowerSwitch(driver string, opts Options) (PowerSwitch, error) {
	d, err := Open(driver, opts)
	if err != nil {
		return nil, err
	}
	s, err := AsPowerSwitch(d)
	if err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}
