#!/bin/sh
# The warm "sip" exec resource of a test node: kamailio answering OPTIONS
# on the VIP and on the node's address. The test fills in the @...@
# fields. The pid file is sipp.pid, so the harness's crash and reset kill
# it as they kill sipp.
#   start   starts kamailio in a session of its own (a crash of the agent
#           leaves it running, as it would leave a real PBX) and waits
#           until it listens on the VIP and on the node's address
#   stop    ends it and its children
#   status  0 while it runs, 3 when it does not (LSB)
DIR=@DIR@
PIDFILE=$DIR/sipp.pid
VIP=@VIP@
NODEIP=@NODEIP@

running() {
	[ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "$1" in
start)
	if running; then exit 0; fi
	echo "$(date +%s.%N) start" >>"$DIR/sipp-resource.log"
	cd "$DIR" || exit 1
	# A killed kamailio's children may outlive it and still hold its
	# sockets: end its process group and wait until it is gone, or the
	# new one cannot bind.
	if [ -s "$PIDFILE" ]; then
		old=$(cat "$PIDFILE")
		kill -KILL -- "-$old" 2>/dev/null
		i=0
		while kill -0 -- "-$old" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.05
			i=$((i + 1))
		done
	fi
	setsid kamailio -f "$DIR/kamailio.cfg" -DD -E -m 16 -M 4 -w "$DIR" -Y "$DIR" >>"$DIR/kamailio.out" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	i=0
	while [ $i -lt 100 ]; do
		if ! running; then
			echo "kamailio exited at start: $(tail -n 3 "$DIR/kamailio.out")" >&2
			exit 1
		fi
		if ss -Hnlu "src $VIP:5060" | grep -q . && ss -Hnlu "src $NODEIP:5060" | grep -q .; then exit 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	echo "kamailio does not listen on $VIP:5060 and $NODEIP:5060 after 5s" >&2
	exit 1
	;;
stop)
	echo "$(date +%s.%N) stop" >>"$DIR/sipp-resource.log"
	if [ -s "$PIDFILE" ]; then
		pid=$(cat "$PIDFILE")
		kill -TERM -- "-$pid" 2>/dev/null
		kill -CONT -- "-$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -KILL -- "-$pid" 2>/dev/null
	fi
	rm -f "$PIDFILE"
	exit 0
	;;
status)
	if running; then exit 0; fi
	exit 3
	;;
esac
echo "usage: $0 start|stop|status" >&2
exit 2
