#!/usr/bin/env bash
# Every test tonegate has, from a fresh machine: installs what the tests need when it is
# missing (Debian's tshark, libspandsp-dev, multimon-ng, sox and the Asterisk speech and music WAVs; scapy from
# PyPI), builds the spandsp harness, then formatting, lints, the Rust tests (with the Q.24
# conformance table beside spandsp and a three-minute talk-off run), the independent tshark
# check of every fixture, a check that the fixture generators still produce the committed
# fixtures byte for byte, the masking report (three detectors on masked output, through
# `tonegate mask` and a live relay call), and a real SIP call through Kamailio driving
# rtpengine and then tonegate over the ng protocol. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

SCAPY_VERSION=2.8.0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v tshark >/dev/null 2>&1; then
  echo "== installing tshark (Debian) for the independent fixture check"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 tshark >/dev/null
fi
apt_need=()
for voice in en es fr; do
  dpkg -s asterisk-core-sounds-$voice-wav >/dev/null 2>&1 || apt_need+=(asterisk-core-sounds-$voice-wav)
done
command -v multimon-ng >/dev/null 2>&1 || apt_need+=(multimon-ng)
command -v sox >/dev/null 2>&1 || apt_need+=(sox)
dpkg -s asterisk-moh-opsound-wav >/dev/null 2>&1 || apt_need+=(asterisk-moh-opsound-wav)
if ((${#apt_need[@]})); then
  echo "== installing ${apt_need[*]} (Debian) for the talk-off and masking checks"
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${apt_need[@]}" >/dev/null
fi
echo "== spandsp harness (tools/spandsp/harness.c) for the side-by-side in-band checks"
scripts/spandsp.sh >/dev/null
export TONEGATE_REQUIRE_SPANDSP=1 TONEGATE_REQUIRE_TALKOFF=1

if ! python3 -c "import scapy, sys; sys.exit(scapy.VERSION != '$SCAPY_VERSION')" 2>/dev/null; then
  echo "== installing scapy $SCAPY_VERSION (PyPI) for the fixture generator"
  python3 -m pip install --quiet --disable-pip-version-check "scapy==$SCAPY_VERSION"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== crate boundaries: no runtime, HTTP library or database in the sans-IO crates"
# docs/architecture.md: only the gateway (and pci's connectors, behind the `connectors`
# feature) may pull in tokio, an HTTP stack or a database.
boundary_failed=0
for spec in "tonegate-media" "tonegate-control" "tonegate-call" "tonegate-pci --no-default-features"; do
  # shellcheck disable=SC2086
  hits=$(cargo tree -p $spec -e normal --prefix none --locked | awk '{print $1}' | sort -u \
    | grep -xE 'tokio|reqwest|axum|hyper|rusqlite|sqlx|tokio-postgres|mio' | tr '\n' ' ' || true)
  if [ -n "$hits" ]; then
    echo "crate boundary broken: $spec depends on $hits"
    boundary_failed=1
  fi
done
[ "$boundary_failed" = 0 ] || exit 1
echo "== cargo test"
cargo test --workspace --locked
echo "== cargo doc (broken intra-doc links fail the run)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== fixtures: tshark agrees with every manifest"
python3 scripts/tshark_presses.py --check

echo "== fixtures: the generator reproduces the committed files"
regen=$(mktemp -d)
trap 'rm -rf "$regen"' EXIT
python3 scripts/gen_fixtures.py --out "$regen" >/dev/null
for dir in rfc4733 links bad; do
  diff -r "fixtures/$dir" "$regen/$dir"
done
python3 scripts/gen_inband.py --out "$regen" >/dev/null
diff -r fixtures/inband "$regen/inband"

echo "== in-band: the Q.24 table, tonegate beside spandsp"
cargo run --locked -q -p tonegate -- conformance --require-spandsp
echo "== masking: the report (docs/masking.md); no detector recovers a digit, collateral in target"
bash scripts/masking-report.sh
echo "== masking: collateral on all 82 minutes of the Debian prompts, per voice"
cargo test --release --locked -q -p tonegate-media --test scrub_speech -- --ignored --nocapture
echo "== SIP end to end: Kamailio and SIPp with rtpengine (the control), then with tonegate"
# scripts/sip-e2e.sh installs kamailio, sip-tester and (for the control) rtpengine-daemon,
# userspace only. tonegate mode runs the debug binary cargo test built above.
bash scripts/sip-e2e.sh --media-proxy rtpengine
TONEGATE_BIN="${CARGO_TARGET_DIR:-target}/debug/tonegate" bash scripts/sip-e2e.sh --media-proxy tonegate
echo "== all tests passed"
