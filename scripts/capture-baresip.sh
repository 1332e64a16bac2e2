#!/usr/bin/env bash
# Re-create fixtures/real/baresip-rfc4733.pcap: a real baresip call on
# 127.0.0.1 in which the caller sends DTMF as RFC 4733 telephone-events.
#
#   scripts/capture-baresip.sh [OUT.pcap]
#
# What it does, all on the loopback interface and bounded in time:
#   1. installs baresip-core and tshark with apt-get if they are missing
#      (waits for the dpkg lock if another apt is running);
#   2. starts tshark on lo, filtered to the SIP and RTP ports used here,
#      writing classic libpcap (-F pcap);
#   3. starts a callee baresip (own config dir, answermode=auto);
#   4. starts a caller baresip (own config dir, ctrl_tcp on 127.0.0.1),
#      dials the callee, sends each key of $KEYS with the `sndcode`
#      command (one key per command, so each gets its own start/end),
#      hangs up and quits both;
#   5. stops tshark, then checks with tshark that the RTP events in the
#      capture decode to exactly $KEYS, in order (exits 1 if not).
#
# Headless: audio source is the `ausine` module (a 440 Hz sine, no device),
# audio player is ALSA's built-in `null` PCM (discards samples, no device).
# No stdio/cons UI, no video, no NAT/ICE/DTLS modules are loaded.
#
# Environment knobs (all optional):
#   KEYS       keys to send          (default 1234567890*#)
#   BASE_PORT  first of 40 UDP/TCP ports on 127.0.0.1 to use
#              (default: random in 20000..59959)
#   KEY_GAP    seconds between keys  (default 0.4)
#   KEEP_LOGS  if set, keep the temporary dir with the baresip logs
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
OUT="${1:-$repo/fixtures/real/baresip-rfc4733.pcap}"
KEYS="${KEYS:-1234567890*#}"
KEY_GAP="${KEY_GAP:-0.4}"

log() { printf 'capture-baresip: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install
need=()
command -v baresip >/dev/null 2>&1 || need+=(baresip-core) # the metapackage `baresip` also pulls GTK/ffmpeg/gstreamer
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v timeout >/dev/null 2>&1 || need+=(coreutils)
if ((${#need[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing ${need[*]} and not root; install them first"
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # DPkg::Lock::Timeout waits for a background apt/dpkg instead of failing.
    timeout 900 apt-get -o DPkg::Lock::Timeout=600 update -qq || true
    timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        "${need[@]}" >&2
fi
modpath=""
for d in /usr/lib/baresip/modules /usr/lib/*/baresip/modules /usr/local/lib/baresip/modules; do
    [[ -f $d/ctrl_tcp.so ]] && { modpath=$d; break; }
done
[[ -n $modpath ]] || die "baresip modules (ctrl_tcp.so) not found"
for m in g711 ausine alsa account menu ctrl_tcp; do
    [[ -f $modpath/$m.so ]] || die "baresip module $m.so missing in $modpath"
done
bver="$(baresip -h 2>&1 | sed -n 's/^baresip v\([0-9.]*\).*/\1/p' | head -n1 || true)"
log "baresip ${bver:-?} (modules in $modpath)"

# ---------------------------------------------------------------- ports
port_free() { ! ss -Hltnu "sport = :$1" 2>/dev/null | grep -q .; }
pick_base() {
    local b i ok
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        b=$((20000 + (RANDOM % 1000) * 40))
        ok=1
        for ((i = 0; i < 40; i++)); do port_free $((b + i)) || { ok=0; break; }; done
        ((ok)) && { echo "$b"; return 0; }
    done
    return 1
}
BASE_PORT="${BASE_PORT:-$(pick_base)}" || die "no free port range found"
SIP_CALLEE=$((BASE_PORT + 0))
SIP_CALLER=$((BASE_PORT + 2))
CTRL_CALLEE=$((BASE_PORT + 4))
CTRL_CALLER=$((BASE_PORT + 5))
RTP_CALLEE_LO=$((BASE_PORT + 10)) RTP_CALLEE_HI=$((BASE_PORT + 19))
RTP_CALLER_LO=$((BASE_PORT + 20)) RTP_CALLER_HI=$((BASE_PORT + 29))
FILTER="udp and (port $SIP_CALLEE or port $SIP_CALLER or portrange $RTP_CALLEE_LO-$RTP_CALLER_HI)"

# ---------------------------------------------------------------- cleanup
work="$(mktemp -d /tmp/capture-baresip.XXXXXX)"
pids=()
cleanup() {
    local p
    exec 3>&- 4>&- || true
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ -n ${KEEP_LOGS:-} ]]; then log "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- configs
write_config() { # dir sip_port rtp_lo rtp_hi ctrl_port
    cat >"$1/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$2
call_local_timeout	20
call_max_calls		1
audio_path		/usr/share/baresip
audio_player		alsa,null
audio_alert		alsa,null
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
rtp_ports		$3-$4
rtcp_mux		no
rtp_stats		no
net_interface		127.0.0.1
module_path		$modpath
module			g711.so
module			ausine.so
module			alsa.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$5
EOF
    : >"$1/contacts"
}
mkdir -p "$work/callee" "$work/caller"
write_config "$work/callee" "$SIP_CALLEE" "$RTP_CALLEE_LO" "$RTP_CALLEE_HI" "$CTRL_CALLEE"
write_config "$work/caller" "$SIP_CALLER" "$RTP_CALLER_LO" "$RTP_CALLER_HI" "$CTRL_CALLER"
echo "<sip:callee@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU" >"$work/callee/accounts"
echo "<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU" >"$work/caller/accounts"

# ---------------------------------------------------------------- capture
mkdir -p "$(dirname "$OUT")"
tmp_pcap="$work/capture.pcap"
log "capturing on lo: $FILTER"
tshark -i lo -q -F pcap -f "$FILTER" -a duration:90 -w "$tmp_pcap" \
    </dev/null >"$work/tshark.log" 2>&1 &
tshark_pid=$!
pids+=("$tshark_pid")
for _ in $(seq 100); do
    grep -q "Capturing on" "$work/tshark.log" 2>/dev/null && break
    kill -0 "$tshark_pid" 2>/dev/null || { cat "$work/tshark.log" >&2; die "tshark exited"; }
    sleep 0.1
done
grep -q "Capturing on" "$work/tshark.log" || die "tshark did not start"
sleep 0.5

# ---------------------------------------------------------------- user agents
timeout 80 baresip -4 -t 75 -f "$work/callee" </dev/null >"$work/callee.log" 2>&1 &
pids+=($!)
timeout 80 baresip -4 -t 75 -f "$work/caller" </dev/null >"$work/caller.log" 2>&1 &
pids+=($!)

connect() { # fd port
    local i
    for i in $(seq 50); do
        if eval "exec $1<>/dev/tcp/127.0.0.1/$2" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
connect 3 "$CTRL_CALLER" || { cat "$work/caller.log" >&2; die "caller ctrl_tcp not reachable"; }
connect 4 "$CTRL_CALLEE" || { cat "$work/callee.log" >&2; die "callee ctrl_tcp not reachable"; }
# ctrl_tcp speaks netstrings carrying JSON; keep what the caller says.
timeout 80 cat <&3 >"$work/caller.events" &
pids+=($!)
timeout 80 cat <&4 >"$work/callee.events" &
pids+=($!)
cmd() { # fd command [params]
    local m
    if [[ $# -ge 3 ]]; then
        m="{\"command\":\"$2\",\"params\":\"$3\",\"token\":\"t\"}"
    else
        m="{\"command\":\"$2\",\"token\":\"t\"}"
    fi
    printf '%d:%s,' "${#m}" "$m" >&"$1"
}
wait_for() { # file pattern tenths
    local i
    for ((i = 0; i < $3; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

log "caller dials sip:callee@127.0.0.1:$SIP_CALLEE"
cmd 3 dial "sip:callee@127.0.0.1:$SIP_CALLEE"
wait_for "$work/caller.events" CALL_ESTABLISHED 100 || { cat "$work/caller.log" >&2; die "call not established"; }
wait_for "$work/caller.events" CALL_RTPESTAB 50 || log "warning: no incoming RTP seen yet"
sleep 1

log "sending keys $KEYS"
for ((i = 0; i < ${#KEYS}; i++)); do
    # one key per sndcode: baresip sends the digit, then the key release,
    # so every key is its own RFC 4733 event (start + 3 end packets).
    cmd 3 sndcode "${KEYS:i:1}"
    sleep "$KEY_GAP"
done
sleep 1

log "hang up"
cmd 3 hangup
wait_for "$work/caller.events" CALL_CLOSED 50 || log "warning: no CALL_CLOSED"
sleep 0.5
cmd 3 quit
cmd 4 quit
sleep 1
kill -TERM "$tshark_pid" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$tshark_pid" 2>/dev/null || break; sleep 0.1; done
wait "$tshark_pid" 2>/dev/null || true

[[ -s $tmp_pcap ]] || die "capture is empty"
install -m 0644 "$tmp_pcap" "$OUT"
log "wrote $OUT ($(stat -c %s "$OUT") bytes)"

# ---------------------------------------------------------------- check
pt="$(tshark -r "$OUT" -Y 'sdp.media_attr contains "telephone-event"' -T fields -e sdp.media_attr 2>/dev/null |
    tr ',' '\n' | sed -n 's/^rtpmap:\([0-9]*\) telephone-event.*/\1/p' | head -n1 || true)"
got="$(tshark -r "$OUT" -o rtp.heuristic_rtp:TRUE -Y rtpevent -T fields \
    -e rtp.ssrc -e rtp.timestamp -e rtpevent.event_id 2>/dev/null |
    awk -F'\t' '!seen[$1 FS $2]++ { printf "%s", substr("0123456789*#ABCD", $3 + 1, 1) }')"
log "telephone-event PT ${pt:-?}; events decoded by tshark: '$got' (sent '$KEYS')"
echo "baresip_version=${bver:-unknown} event_pt=${pt:-unknown} keys=$got"
[[ $got == "$KEYS" ]] || die "capture does not hold the keys sent"
