#!/bin/sh
# Probe: a small OCF resource agent for hatui's tests. It keeps its state
# in the file named by the "state" parameter, writes the OCF environment it
# was given into that file, and lets a test force the monitor's exit code.
#
# OCF exit codes: 0 success, 1 generic error, 3 unimplemented,
# 7 not running.

meta_data() {
	cat <<'END'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Probe" version="1.0">
<version>1.0</version>
<longdesc lang="en">Test agent for hatui.</longdesc>
<shortdesc lang="en">hatui test agent</shortdesc>
<parameters>
<parameter name="state" required="1" unique="1">
<shortdesc lang="en">State file</shortdesc>
<content type="string"/>
</parameter>
<parameter name="monitor_rc" required="0">
<shortdesc lang="en">Force the monitor's exit code</shortdesc>
<content type="integer" default=""/>
</parameter>
<parameter name="verbose">
<shortdesc lang="en">Log more</shortdesc>
<content type="boolean" default="false"/>
</parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="monitor" timeout="10s" interval="10s"/>
<action name="meta-data" timeout="5s"/>
</actions>
</resource-agent>
END
}

case "$1" in
meta-data)
	meta_data
	exit 0
	;;
start)
	if ! env | grep '^OCF_' | sort >"$OCF_RESKEY_state" 2>/dev/null; then
		echo "Probe($OCF_RESOURCE_INSTANCE): ERROR: cannot create state file $OCF_RESKEY_state" >&2
		exit 1
	fi
	exit 0
	;;
stop)
	rm -f "$OCF_RESKEY_state"
	exit 0
	;;
monitor)
	if [ -n "$OCF_RESKEY_monitor_rc" ]; then
		echo "Probe($OCF_RESOURCE_INSTANCE): ERROR: forced exit $OCF_RESKEY_monitor_rc" >&2
		exit "$OCF_RESKEY_monitor_rc"
	fi
	[ -f "$OCF_RESKEY_state" ] && exit 0
	exit 7
	;;
*)
	exit 3
	;;
esac
