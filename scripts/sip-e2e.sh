#!/usr/bin/env bash
# A real call through a real Kamailio, with its rtpengine module driving a media proxy over the
# ng protocol: rtpengine itself (to prove the harness) or tonegate (to prove tonegate is a
# drop-in for it). docs/deploy.md explains the Kamailio side.
#
#   scripts/sip-e2e.sh [--media-proxy rtpengine|tonegate] [--keep DIR] [--ng-flags FLAGS]
#                      [--calls rfc4733,inband]
#
# Everything runs on 127.0.0.1: the media proxy (`rtpengine`, userspace only, or `tonegate
# serve` with ng_listen), Kamailio (tools/sip/kamailio.cfg, filled in here), a SIPp UAS (the
# agent's side: answers, plays the agent's voice, and what it receives is recorded by a dumpcap
# capture of the loopback filtered by this run's ports) and a SIPp UAC (the caller: plays a
# pcap from tools/sip/make_pcaps.py with `play_pcap_audio`, then hangs up). Two calls, one
# whose keys are RFC 4733 telephone-events and one whose keys are in-band tones; each keys the
# sandbox test card 4242424242424242, expiry 12/30, CVV 123, postal code 94107.
#
# Each call is checked by tools/sip/check_call.py (through Kamailio, SDPs at the proxy, RTP both
# ways through it, the agent's voice unchanged, offer/answer/delete over ng) and here (the
# proxy lists the call during it and not after the BYE). rtpengine mode also checks that the
# keys reach the UAS (the control: the observation works). tonegate mode starts a payment on
# the call through the agent API by SIP Call-ID (tools/sip/agent.py) and checks that it
# succeeds with the sandbox, and that the UAS got audio but no telephone-event and no tone
# multimon-ng decodes.
#
# Prints PASS or FAIL per check and a closing "sip-e2e: N passed, N failed"; exits 1 when any
# check failed (a process that does not start is one), 2 on a usage error. Installs what is
# missing (Debian: kamailio, sip-tester, tshark, multimon-ng, sox, iproute2, curl;
# rtpengine-daemon in rtpengine mode, never its kernel module). tonegate mode runs
# $TONEGATE_BIN, or builds target/debug/tonegate (or under $CARGO_TARGET_DIR) with cargo.
# Every process it starts it stops on exit (TERM, then KILL after 5 s). About 40 s a run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

proxy=rtpengine
keep=""
ng_flags=""
calls="rfc4733,inband"
while (($#)); do
  case "$1" in
    --media-proxy) proxy="${2:-}"; shift 2 ;;
    --keep) keep="${2:-}"; shift 2 ;;
    --ng-flags) ng_flags="${2:-}"; shift 2 ;;
    --calls) calls="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "sip-e2e: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$proxy" in rtpengine|tonegate) ;; *) echo "sip-e2e: --media-proxy is rtpengine or tonegate" >&2; exit 2 ;; esac
case "$ng_flags" in *[\"\\\|]*) echo "sip-e2e: --ng-flags holds no quote, backslash or |" >&2; exit 2 ;; esac

t_start=$(date +%s.%N)
elapsed() { awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "== [$(elapsed) s] $*"; }

# --- what this needs, from Debian -------------------------------------------------------------
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
kamailio_mod=/usr/lib/x86_64-linux-gnu/kamailio/modules
dpkg -s kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v multimon-ng >/dev/null 2>&1 || need+=(multimon-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "$proxy" = rtpengine ]; then
  # The userspace daemon only: no rtpengine-kernel-dkms, no recording daemon.
  command -v rtpengine >/dev/null 2>&1 || need+=(rtpengine-daemon)
fi
if ((${#need[@]})); then
  say "installing ${need[*]} (Debian)"
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
kamailio_mod=$(dirname "$(dpkg -L kamailio | grep '/modules/rtpengine\.so$' | head -1)")
[ -f "$kamailio_mod/rtpengine.so" ] || { echo "sip-e2e: Kamailio's rtpengine module is missing" >&2; exit 2; }

if [ "$proxy" = tonegate ]; then
  tonegate_bin="${TONEGATE_BIN:-}"
  if [ -z "$tonegate_bin" ]; then
    say "building tonegate (cargo build -p tonegate)"
    cargo build --locked -q -p tonegate
    tonegate_bin="${CARGO_TARGET_DIR:-$root/target}/debug/tonegate"
  fi
  [ -x "$tonegate_bin" ] || { echo "sip-e2e: no tonegate binary at $tonegate_bin" >&2; exit 2; }
fi

# --- the run's directory and the processes it owns -------------------------------------------
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  work=$(cd "$keep" && pwd)
else
  work=$(mktemp -d /tmp/sip-e2e.XXXXXX)
fi
pids=()
passed=0
failed=0
stop_pid() {
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  if [ -z "$keep" ]; then
    if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "sip-e2e: logs and captures kept in $work" >&2; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup_fail() {
  echo "FAIL setup: $*"
  for f in "$work"/*.log; do [ -s "$f" ] && { echo "--- $f (last lines)"; tail -15 "$f"; }; done
  echo "sip-e2e: $passed passed, $((failed + 1)) failed"
  exit 1
}

# Free ports on 127.0.0.1: UDP (and TCP) sockets bound to port 0, then let go. Media ports are
# even with the next three free too (RTP, RTCP, and SIPp's video pair).
free_ports() {
  python3 - "$1" "$2" <<'EOF'
import socket, sys, random
n, even = int(sys.argv[1]), sys.argv[2] == "even"
def free(p):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True
got = []
while len(got) < n:
    p = random.randrange(20000, 29990, 2 if even else 1)
    span = range(p, p + 4) if even else [p]
    if all(free(q) for q in span) and not any(abs(p - g) < 4 for g in got):
        got.append(p)
print(" ".join(map(str, got)))
EOF
}
# A block of BLOCK ports for the proxy's media, in 30000-39999, none in use now.
free_block() {
  python3 - "$1" <<'EOF'
import random, socket, sys
size = int(sys.argv[1])
for _ in range(50):
    first = random.randrange(30000, 39999 - size, 2)
    ok = True
    for p in range(first, first + size):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            s.close()
        if not ok:
            break
    if ok:
        print(first, first + size - 1)
        sys.exit(0)
sys.exit("no free block of %d ports" % size)
EOF
}
udp_bound() { ss -Hlun "sport = :$1" | grep -q .; }
wait_udp() {
  local port=$1 what=$2 i
  for ((i = 0; i < 100; i++)); do udp_bound "$port" && return 0; sleep 0.1; done
  setup_fail "$what is not listening on udp 127.0.0.1:$port after 10 s"
}

read -r sip_kamailio sip_uac sip_uas ng_port http_port customer_port <<<"$(free_ports 6 any)"
read -r media_lo media_hi <<<"$(free_block 200)"

result() { # result PASS|FAIL text
  echo "$1 $2"
  if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

say "media proxy: $proxy; work directory $work"
say "ports: Kamailio $sip_kamailio, UAC $sip_uac, UAS $sip_uas, ng $ng_port, media $media_lo-$media_hi"

python3 tools/sip/make_pcaps.py "$work/pcaps" >/dev/null
call_ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["caller-rfc4733"]["duration_ms"])' "$work/pcaps/manifest.json")
hold_ms=$((call_ms + 1500))

# --- the media proxy ----------------------------------------------------------------------
if [ "$proxy" = rtpengine ]; then
  say "starting rtpengine (userspace, --table=-1)"
  # --config-file=none: Debian's /etc/rtpengine/rtpengine.conf asks for kernel table 0 and
  # recording. --delete-delay=0: a deleted call leaves `list` at once (default: 30 s later).
  rtpengine --config-file=none --table=-1 --interface=127.0.0.1 \
    --listen-ng="127.0.0.1:$ng_port" --port-min="$media_lo" --port-max="$media_hi" \
    --foreground --log-stderr --log-level=6 --delete-delay=0 --num-threads=2 \
    --pidfile="$work/rtpengine.pid" >"$work/rtpengine.log" 2>&1 &
  pids+=($!)
else
  say "starting tonegate serve with ng_listen"
  mkdir -p "$work/tonegate-data"
  cat >"$work/collect_payment.yaml" <<EOF
name: collect_payment
purpose: Collects a card payment for the caller's outstanding order once they agree to pay.
set_variables:
  order_id: '{{ vars.get("order_id", "10482") }}'
  email: '{{ refs.email }}'
connections:
  start:
    url: http://127.0.0.1:$customer_port/start
    timeout_ms: 2000
  success:
    url: http://127.0.0.1:$customer_port/success
  failure:
    url: http://127.0.0.1:$customer_port/failure
limits:
  inter_digit_timeout_seconds: 3
  first_key_timeout_seconds: 8
EOF
  # `ng_listen` / TONEGATE_NG_LISTEN as the `ng` branch reads them (serve/config.rs).
  cat >"$work/tonegate.yaml" <<EOF
listen: 127.0.0.1:$http_port
rtp_ip: 127.0.0.1
rtp_ports: $media_lo-$media_hi
ng_listen: 127.0.0.1:$ng_port
telephony_tokens: [sip-e2e-telephony]
agent_tokens: [sip-e2e-agent]
functions: [$work/collect_payment.yaml]
data_dir: $work/tonegate-data
EOF
  python3 tools/sip/agent.py customer "$customer_port" "$work/customer.jsonl" >"$work/customer.log" 2>&1 &
  pids+=($!)
  TONEGATE_NG_LISTEN="127.0.0.1:$ng_port" "$tonegate_bin" serve --config "$work/tonegate.yaml" \
    >"$work/tonegate.log" 2>&1 &
  pids+=($!)
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$http_port/healthz" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || setup_fail "tonegate serve exited"
    sleep 0.1
  done
fi
python3 tools/sip/ng.py "127.0.0.1:$ng_port" wait-ping 10 >/dev/null 2>"$work/ng-ping.log" \
  || setup_fail "the media proxy does not answer an ng ping on udp 127.0.0.1:$ng_port"
say "the media proxy answers ng ping on 127.0.0.1:$ng_port"

# --- Kamailio ----------------------------------------------------------------------------
sed -e "s|@LISTEN@|127.0.0.1:$sip_kamailio|" -e "s|@NG_SOCK@|udp:127.0.0.1:$ng_port|" \
  -e "s|@UAS@|127.0.0.1:$sip_uas|" -e "s|@MPATH@|$kamailio_mod/|" \
  -e "s|@RTPENGINE_FLAGS@|$ng_flags|g" tools/sip/kamailio.cfg >"$work/kamailio.cfg"
mkdir -p "$work/kamailio-run"
kamailio -c -f "$work/kamailio.cfg" >"$work/kamailio-check.log" 2>&1 || setup_fail "kamailio -c rejects the config"
say "starting Kamailio $(kamailio -v | head -1 | awk '{print $3}')"
kamailio -f "$work/kamailio.cfg" -DD -E -P "$work/kamailio.pid" -Y "$work/kamailio-run" -w "$work" \
  -m 32 -M 4 >"$work/kamailio.log" 2>&1 &
pids+=($!)
wait_udp "$sip_kamailio" Kamailio

# --- the calls ---------------------------------------------------------------------------
ng() { python3 tools/sip/ng.py "127.0.0.1:$ng_port" "$@"; }
has_call() { ng list | python3 -c 'import json,sys; sys.exit(sys.argv[1] not in json.load(sys.stdin).get("calls", []))' "$1"; }

sed -e "s|@PCAP@|$work/pcaps/agent.pcap|" -e "s|@BYE_TIMEOUT_MS@|$((hold_ms + 20000))|" \
  tools/sip/uas.xml >"$work/uas.xml"
n=0
IFS=, read -r -a call_list <<<"$calls"
for keying in "${call_list[@]}"; do
  case "$keying" in rfc4733|inband) ;; *) echo "sip-e2e: --calls takes rfc4733 and inband" >&2; exit 2 ;; esac
  n=$((n + 1))
  label="call $n ($keying)"
  dir="$work/call$n-$keying"
  mkdir -p "$dir"
  read -r uac_media uas_media <<<"$(free_ports 2 even)"
  call_id="sip-e2e-$n-$$@127.0.0.1"
  sed -e "s|@PCAP@|$work/pcaps/caller-$keying.pcap|" -e "s|@HOLD_MS@|$hold_ms|" \
    tools/sip/uac.xml >"$dir/uac.xml"

  say "$label: capture, then the UAS, then the UAC (Call-ID $call_id)"
  dumpcap -q -i lo -f "udp port $sip_kamailio or udp port $sip_uac or udp port $sip_uas or udp port $ng_port or udp port $uac_media or udp port $uas_media" \
    -w "$dir/capture.pcapng" >"$dir/dumpcap.log" 2>&1 &
  cap_pid=$!
  pids+=("$cap_pid")
  for ((i = 0; i < 50; i++)); do [ -s "$dir/capture.pcapng" ] && break; sleep 0.1; done
  sleep 0.3

  sipp -sf "$work/uas.xml" -i 127.0.0.1 -p "$sip_uas" -mi 127.0.0.1 -mp "$uas_media" -m 1 \
    -nostdin -timeout 90s -timeout_error -trace_msg -message_file "$dir/uas-messages.log" \
    -trace_err -error_file "$dir/uas-errors.log" >"$dir/uas.log" 2>&1 &
  uas_pid=$!
  pids+=("$uas_pid")
  wait_udp "$sip_uas" "the SIPp UAS"

  t_call=$(date +%s.%N)
  sipp "127.0.0.1:$sip_kamailio" -sf "$dir/uac.xml" -i 127.0.0.1 -p "$sip_uac" -mi 127.0.0.1 \
    -mp "$uac_media" -m 1 -cid_str "sip-e2e-$n-$$@127.0.0.1" -nostdin -timeout 90s -timeout_error \
    -trace_msg -message_file "$dir/uac-messages.log" -trace_err -error_file "$dir/uac-errors.log" \
    >"$dir/uac.log" 2>&1 &
  uac_pid=$!
  pids+=("$uac_pid")

  agent_pid=""
  if [ "$proxy" = tonegate ]; then
    python3 tools/sip/agent.py pay --api "http://127.0.0.1:$http_port" --token sip-e2e-agent \
      --sip-call-id "$call_id" --out "$dir/agent.json" --timeout $(((hold_ms + 5000) / 1000)) \
      >"$dir/agent.log" 2>&1 &
    agent_pid=$!
    pids+=("$agent_pid")
  fi

  listed=0
  for ((i = 0; i < 50; i++)); do
    if has_call "$call_id" 2>/dev/null; then listed=1; break; fi
    sleep 0.1
  done
  sleep 1
  query=$(ng query "$call_id" || true)
  echo "$query" >"$dir/ng-query-during.json"
  if [ "$listed" = 1 ] && grep -q '"result": "ok"' <<<"$query"; then
    result PASS "$label: the media proxy holds the call during it (ng list, ng query ok)"
  else
    result FAIL "$label: the media proxy holds the call during it: list $( [ $listed = 1 ] && echo has || echo lacks ) it, query answered $query"
  fi

  uac_rc=0
  wait "$uac_pid" || uac_rc=$?
  t_bye=$(date +%s.%N)
  uas_rc=0
  wait "$uas_pid" || uas_rc=$?
  if [ "$uac_rc" = 0 ] && [ "$uas_rc" = 0 ]; then
    result PASS "$label: both SIPp agents completed the call (INVITE, ACK, BYE) in $(awk -v a="$t_call" -v b="$t_bye" 'BEGIN { printf "%.1f", b - a }') s"
  else
    result FAIL "$label: SIPp exit codes: UAC $uac_rc, UAS $uas_rc ($dir/uac-errors.log, $dir/uas-errors.log)"
  fi

  if [ -n "$agent_pid" ]; then
    agent_rc=0
    wait "$agent_pid" || agent_rc=$?
    summary=$(python3 - "$dir/agent.json" <<'EOF' 2>&1 || true
import json, sys
try:
    a = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"no agent record: {e}")
    sys.exit(0)
final = a.get("final") or {}
states = " > ".join(s["state"] for s in a.get("states", []))
print(f"{a.get('result')}; states {states or 'none'}; card {json.dumps(final.get('card'))}; outcome {json.dumps(final.get('outcome'))}")
EOF
)
    if [ "$agent_rc" = 0 ]; then
      result PASS "$label: the payment found by SIP Call-ID succeeded with the sandbox ($summary)"
    else
      result FAIL "$label: the payment by SIP Call-ID: $summary"
    fi
  fi

  gone=0
  for ((i = 0; i < 30; i++)); do
    if ! has_call "$call_id" 2>/dev/null; then gone=1; break; fi
    sleep 0.1
  done
  query=$(ng query "$call_id" || true)
  echo "$query" >"$dir/ng-query-after.json"
  if [ "$gone" = 1 ] && ! grep -q '"result": "ok"' <<<"$query"; then
    result PASS "$label: after the BYE the proxy no longer has the call (ng list; query: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("error-reason"))' "$query" 2>/dev/null))"
  else
    result FAIL "$label: after the BYE the proxy still has the call (list: $gone, query: $query)"
  fi
  if [ "$proxy" = rtpengine ]; then
    if grep -F "$call_id" "$work/rtpengine.log" | grep -q "Deleting entire call"; then
      result PASS "$label: rtpengine's log: \"Deleting entire call\" for it"
    else
      result FAIL "$label: rtpengine's log has no \"Deleting entire call\" for $call_id"
    fi
  fi

  sleep 0.3
  stop_pid "$cap_pid"
  agent_arg=()
  [ -n "$agent_pid" ] && agent_arg=(--agent-json "$dir/agent.json")
  set +e
  python3 tools/sip/check_call.py --capture "$dir/capture.pcapng" --mode "$proxy" --keying "$keying" \
    --call-id "$call_id" --kamailio "$sip_kamailio" --uac-sip "$sip_uac" --uas-sip "$sip_uas" \
    --ng "$ng_port" --uac-media "$uac_media" --uas-media "$uas_media" --pcaps "$work/pcaps" \
    --out "$dir" --label "$label" "${agent_arg[@]}" >"$dir/checks.txt" 2>&1
  set -e
  cat "$dir/checks.txt"
  passed=$((passed + $(grep -c '^PASS ' "$dir/checks.txt" || true)))
  failed=$((failed + $(grep -c '^FAIL ' "$dir/checks.txt" || true)))
  grep -q -E '^(PASS|FAIL) ' "$dir/checks.txt" || result FAIL "$label: check_call.py checked nothing (see $dir/checks.txt)"
done

if [ "$proxy" = tonegate ]; then
  # The card went in as keys and must come out nowhere: not in tonegate's log, not in what the
  # customer's endpoints received.
  if grep -q 4242424242424242 "$work/tonegate.log" "$work/customer.jsonl" 2>/dev/null; then
    result FAIL "tonegate: the card number appears in tonegate's log or the customer endpoints' bodies"
  else
    result PASS "tonegate: the card number appears in neither tonegate's log nor the customer endpoints' bodies"
  fi
  successes=$(grep -c '"path": "/success"' "$work/customer.jsonl" 2>/dev/null || true)
  if [ "${successes:-0}" -ge "$n" ]; then
    result PASS "tonegate: the success connection was called for each payment ($successes)"
  else
    result FAIL "tonegate: the success connection was called ${successes:-0} times for $n calls"
  fi
fi

say "done"
echo "media proxy $proxy"
echo "sip-e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
