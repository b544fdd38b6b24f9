#!/usr/bin/env bash
# scripts/install_deps.sh: installs what building and testing duet needs on Debian/Ubuntu (as root, or
# through sudo): the compiler and Autotools, Check, jansson, PCRE2, Nettle, OpenBLAS, libmicrohttpd (duet serve),
# valgrind (the scheduler's leak check), and python3 with pip (for `make model`). Packages already
# installed are skipped. The CUDA toolkit is not installed here: the gpu backend is built when ./configure finds nvcc.
# usage: scripts/install_deps.sh [--help]
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
packages="build-essential autoconf automake libtool pkg-config check libjansson-dev libpcre2-dev nettle-dev
libopenblas-dev libmicrohttpd-dev python3 python3-pip clang libclang-rt-14-dev valgrind"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# python3 and pip may come from elsewhere (pyenv, a venv): then the Debian ones are not needed.
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    missing="$(echo "$missing" | tr ' ' '\n' | grep -vx -e python3 -e python3-pip | tr '\n' ' ')"
fi
if [ -z "${missing// /}" ]; then echo "install_deps: everything is installed"; exit 0; fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "install_deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends $missing
