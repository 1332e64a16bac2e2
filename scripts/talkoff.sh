#!/usr/bin/env bash
# The full in-band talk-off run: every WAV of Debian's asterisk-core-sounds-en-wav (speech) and
# asterisk-moh-opsound-wav (music), through tonegate's detector and spandsp's, in one run;
# false key presses per hour for each. Installs the packages and builds the spandsp harness
# when missing. Extra arguments go to `tonegate talkoff` (e.g. --list, --speech DIR).
#   scripts/talkoff.sh [--list]
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
for p in asterisk-core-sounds-en-wav asterisk-moh-opsound-wav; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "== installing ${need[*]} (Debian)" >&2
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
scripts/spandsp.sh >/dev/null
cargo run --release --locked -q -p tonegate -- talkoff --check "$@"
