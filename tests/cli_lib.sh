# cli_lib.sh: sourced by the tests/test_*.sh scripts: where duet, the sources and the shared data are,
# a scratch folder removed on exit, check NAME COMMAND... (prints PASS/FAIL, remembers a failure) and
# start_server (the serve tests).
duet="${DUET_BUILDDIR:-.}/duet"
src="${DUET_SRCDIR:-.}"
data="${DUET_DATA:-$src/../shared/data}"
fail=0
check() { what=$1; shift; if "$@"; then echo "PASS: $what"; else echo "FAIL: $what"; fail=1; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# start_server LOG ARGS...: `duet serve -m "$model" ARGS` on a free port in the background, its stderr in
# LOG; sets pid and port (exits 1 if it does not come up).
start_server() {
    log=$1
    shift
    "$duet" serve -m "$model" --port 0 "$@" 2>"$log" &
    pid=$!
    port=""
    i=0
    while [ $i -lt 600 ] && [ -z "$port" ] && kill -0 $pid 2>/dev/null; do
        port=$(sed -n 's/^serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log")
        [ -z "$port" ] && sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        cat "$log"
        echo "FAIL: the server did not start"
        kill $pid 2>/dev/null
        exit 1
    fi
}
