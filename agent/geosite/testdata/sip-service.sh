#!/bin/sh
# sip-service.sh start|stop IP DIR SCENARIO
#
# A site's service for the geo acceptance tests: a sipp UAS answering SIP
# OPTIONS on IP:5060. Both actions are idempotent; stop returns once sipp
# is gone, as the geo manager requires.
set -u
action=$1 ip=$2 dir=$3 scen=$4
pidf=$dir/sipp.pid

running() {
	[ -f "$pidf" ] || return 1
	p=$(cat "$pidf")
	[ -r "/proc/$p/stat" ] || return 1
	# A zombie (no reaper in the namespace) is not running.
	! grep -q '^[0-9]* ([^)]*) Z' "/proc/$p/stat"
}

case $action in
start)
	running && exit 0
	sipp -sf "$scen" -i "$ip" -p 5060 -nostdin -m 1000000000 </dev/null >"$dir/sipp.log" 2>&1 &
	echo $! >"$pidf"
	i=0
	while [ $i -lt 200 ]; do
		if ss -Hlun "src $ip:5060" | grep -q 5060; then exit 0; fi
		running || { echo "sipp exited:"; cat "$dir/sipp.log"; exit 1; }
		sleep 0.02
		i=$((i + 1))
	done
	echo "sipp does not listen on $ip:5060"
	exit 1
	;;
stop)
	if running; then
		kill "$(cat "$pidf")"
		i=0
		while running && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
		running && kill -9 "$(cat "$pidf")"
	fi
	rm -f "$pidf"
	exit 0
	;;
*)
	echo "usage: $0 start|stop IP DIR SCENARIO"
	exit 2
	;;
esac
