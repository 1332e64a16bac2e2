#!/usr/bin/env bash
# tonegate's benchmarks; not part of CI (they take minutes and write a 1 GiB capture under
# target/). Figures and how to read them: docs/benchmarks.md.
#   scripts/bench.sh                 everything
#   TONEGATE_BENCH_MIB=256 scripts/bench.sh   a smaller replay capture
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== RTP parse + RFC 4733 decode (criterion, one core)"
cargo bench -p tonegate-media --bench rfc4733 -- --noplot 2>&1 | grep -E '^parse|time:|thrpt:'
echo "== replay of a large capture, end to end, against a disk read"
cargo bench -p tonegate --bench replay_large 2>&1 | grep -vE '^\s*(Compiling|Finished|Running)'
echo "== in-band DTMF detection: real-time channels per core, tonegate beside spandsp"
scripts/spandsp.sh >/dev/null
cargo bench -p tonegate --bench inband_speed 2>&1 | grep -vE '^\s*(Compiling|Finished|Running)'
echo "== load: concurrent calls at 50 packets/s with key presses (TONEGATE_LOAD_CALLS, default 1000)"
cargo bench -p tonegate --bench load 2>&1 | grep -vE '^\s*(Compiling|Finished|Running)'
