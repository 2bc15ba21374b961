// Package drivers registers every built-in switchdrv driver: import it for
// its side effect wherever devices are opened by name from a config file.
//
//	import _ "github.com/hatui/hatui/switchdrv/drivers"
//
// The drivers: "berofos", "rhino", "iboot" and "fence".
package drivers

import (
	// Each driver registers itself in init.
	_ "github.com/hatui/hatui/switchdrv/berofos"
	_ "github.com/hatui/hatui/switchdrv/fenceagent"
	_ "github.com/hatui/hatui/switchdrv/iboot"
	_ "github.com/hatui/hatui/switchdrv/rhino"
)
