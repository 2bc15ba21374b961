#!/bin/sh
# The "sip" exec resource of a test node: sipp as a SIP UAS answering
# OPTIONS on the VIP, as a PBX would. The test fills in the @...@ fields.
#   start   starts sipp in a session of its own (so killing the agent's
#           process group, a crash of the agent, leaves it running, as it
#           would leave a real PBX) and waits until it listens on the VIP
#   stop    ends it (SIGCONT first: the tests freeze it with SIGSTOP)
#   status  0 while it runs, 3 when it does not (LSB)
DIR=@DIR@
PIDFILE=$DIR/sipp.pid
VIP=@VIP@

running() {
	[ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

case "$1" in
start)
	if running; then exit 0; fi
	echo "$(date +%s.%N) start" >>"$DIR/sipp-resource.log"
	cd "$DIR" || exit 1
	setsid sipp -sf @SCENARIO@ -i "$VIP" -p 5060 -nostdin >>"$DIR/sipp.out" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	# Started means answering: wait for the UDP socket on VIP:5060.
	i=0
	while [ $i -lt 100 ]; do
		if ! running; then
			echo "sipp exited at start: $(tail -n 3 "$DIR/sipp.out")" >&2
			exit 1
		fi
		if ss -Hnlu "src $VIP:5060" | grep -q .; then exit 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	echo "sipp does not listen on $VIP:5060 after 5s" >&2
	exit 1
	;;
stop)
	echo "$(date +%s.%N) stop" >>"$DIR/sipp-resource.log"
	if [ -s "$PIDFILE" ]; then
		pid=$(cat "$PIDFILE")
		kill -TERM "$pid" 2>/dev/null
		kill -CONT "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
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
