#!/usr/bin/env bash
# Builds tonegate's spandsp harness (tools/spandsp/harness.c) against Debian's libspandsp-dev,
# installing it (and a C compiler) with apt when missing. Prints the harness path on stdout.
#   scripts/spandsp.sh            -> target/spandsp/harness
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
dpkg -s libspandsp-dev >/dev/null 2>&1 || need+=(libspandsp-dev)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if ((${#need[@]})); then
  echo "== installing ${need[*]} (Debian) for the spandsp comparison" >&2
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
out=target/spandsp/harness
mkdir -p target/spandsp
if [ ! -x "$out" ] || [ tools/spandsp/harness.c -nt "$out" ]; then
  cc -O2 -Wall -Wextra -o "$out" tools/spandsp/harness.c -lspandsp -lm >&2
fi
echo "$out"
