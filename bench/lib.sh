# Sourced by the benchmark scripts (bench/*/*.sh): a work directory removed on exit with the
# server still running, a server started in the background until it prints "listening on URL",
# and a process's CPU time.

work=$(mktemp -d)
srv=
cleanup() {
	if [ -n "$srv" ]; then kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# start CMD [ARG...] runs a server whose stderr says "listening on URL"; it sets srv and url.
start() {
	"$@" 2>"$work/serve.log" &
	srv=$!
	url=
	for _ in $(seq 100); do
		url=$(sed -n 's/^listening on \(http[s]*:\/\/[^ ]*\).*/\1/p' "$work/serve.log")
		[ -n "$url" ] && return
		kill -0 "$srv" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "$1 did not start:" >&2
	cat "$work/serve.log" >&2
	exit 1
}

# stop ends the server start began.
stop() {
	kill "$srv"
	wait "$srv" 2>/dev/null || true
	srv=
}

# cputicks PID is the process's CPU time (user + system) in clock ticks: CPU per event is the
# figure a machine shared with other work disturbs least.
cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
