#!/bin/sh
# A stand-in for systemctl, for tests on machines where systemd is not
# PID 1. It keeps unit state as files in $SYSTEMCTL_STATE and answers with
# systemctl's exit codes and words:
#   start/stop: 0 done, 1 job failed, 5 unit not loaded
#   is-active:  prints the active state; 0 only when active, else 3
# A unit named broken* fails to start; one named gone* is not loaded.
state=${SYSTEMCTL_STATE:?}
verb=$1
unit=$2
echo "$verb $unit" >>"$state/calls"
case "$verb" in
start)
	case "$unit" in
	broken*)
		: >"$state/$unit.failed"
		echo "Job for $unit failed because the control process exited with error code." >&2
		echo "See \"systemctl status $unit\" and \"journalctl -xeu $unit\" for details." >&2
		exit 1
		;;
	gone*)
		echo "Failed to start $unit: Unit $unit not found." >&2
		exit 5
		;;
	esac
	: >"$state/$unit.active"
	;;
stop)
	case "$unit" in
	gone*)
		echo "Failed to stop $unit: Unit $unit not loaded." >&2
		exit 5
		;;
	esac
	rm -f "$state/$unit.active"
	;;
is-active)
	if [ -e "$state/$unit.active" ]; then
		echo active
		exit 0
	fi
	if [ -e "$state/$unit.failed" ]; then
		echo failed
		exit 3
	fi
	echo inactive
	exit 3
	;;
*)
	echo "Unknown command verb $verb." >&2
	exit 1
	;;
esac
