# cli_lib.sh: sourced by the tests/test_*.sh scripts: where duet, the sources and the shared data are,
# a scratch folder removed on exit, and check NAME COMMAND... (prints PASS/FAIL, remembers a failure).
duet="${DUET_BUILDDIR:-.}/duet"
src="${DUET_SRCDIR:-.}"
data="${DUET_DATA:-$src/../shared/data}"
fail=0
check() { what=$1; shift; if "$@"; then echo "PASS: $what"; else echo "FAIL: $what"; fail=1; fi; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
