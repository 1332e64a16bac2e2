#!/usr/bin/env bash
# Measures the relay's tone scrubber against three DTMF detectors: tonegate's own (`tonegate
# replay --format json`), spandsp (tools/spandsp/harness.c) and multimon-ng, each on the masked
# output as it is and normalised to full scale (`sox --norm`), beside the same detectors on the
# unmasked input. Every input is masked twice: by `tonegate mask`, and by a live relay call
# (`tonegate serve` on 127.0.0.1, started and stopped here; scripts/relay_mask.py): sent as RTP,
# forwarded with masking held (`mask_whole_call`), written back and put through the same
# detectors. Prints one markdown table per set, the relay's packet counts and added latency
# (docs/masking.md).
#   scripts/masking-report.sh [--replacement silence|noise|tone] [--keep DIR]
# Exits 1 when any detector recovers a digit from a masked output, when the relay loses or
# changes a packet, or when collateral is over its targets (under 100 ms of speech muted a
# minute per voice, at most 20 ms around a tone); scripts/test.sh runs it, so CI does.
# Installs multimon-ng, sox and the en/es/fr Asterisk prompts (Debian) when missing; builds
# tonegate (release) and the spandsp harness once. About two minutes on two cores once built.
set -euo pipefail
cd "$(dirname "$0")/.."
replacement=silence
keep=""
while (($#)); do
  case "$1" in
    --replacement) replacement="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    *) echo "usage: $0 [--replacement silence|noise|tone] [--keep DIR]" >&2; exit 2 ;;
  esac
done
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v multimon-ng >/dev/null 2>&1 || need+=(multimon-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
for voice in en es fr; do
  dpkg -s asterisk-core-sounds-$voice-wav >/dev/null 2>&1 || need+=(asterisk-core-sounds-$voice-wav)
done
if ((${#need[@]})); then
  echo "== installing ${need[*]} (Debian) for the masking report" >&2
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi
harness=$(bash scripts/spandsp.sh)
cargo build --release -q -p tonegate >&2
work=${keep:-$(mktemp -d)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
# One build for the whole run: `tonegate mask`, `tonegate replay` and the gateway all run this
# copy, whatever is rebuilt in target/ meanwhile.
cp target/release/tonegate "$work/tonegate"
tonegate=$work/tonegate
built="$(git rev-parse --short HEAD 2>/dev/null || echo '(not a git checkout)')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' with uncommitted changes in crates/')"
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(uname -srm), $(nproc) cores; replacement $replacement; tonegate $built; work $work" >&2
python3 - "$tonegate" "$harness" "$work" "$replacement" <<'PY'
import json, math, os, random, statistics, struct, subprocess, sys, glob, time
sys.dont_write_bytecode = True
sys.path.insert(0, "scripts")
import relay_mask
tonegate, harness, work, replacement = sys.argv[1:5]
# The gateway for the relay path: killed when this process exits, however it exits.
relay = relay_mask.RelayGateway(tonegate, work, replacement).start()
KEYS = "123A456B789C*0#D"
LOW = [697.0, 770.0, 852.0, 941.0]
HIGH = [1209.0, 1336.0, 1477.0, 1633.0]
def freqs(k):
    i = KEYS.index(k)
    return LOW[i // 4], HIGH[i % 4]
def amp(dbm0):
    return 32767.0 * 10 ** ((dbm0 - 3.14) / 20)

def write_pcm(path, samples):
    body = struct.pack("<%dh" % len(samples), *[max(-32768, min(32767, int(round(x)))) for x in samples])
    hdr = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(body))
    open(path, "wb").write(hdr + body)

def read_pcm(path):
    raw = subprocess.run(["sox", "-R", path, "-t", "raw", "-e", "signed", "-b", "16", "-r", "8000", "-c", "1", "-"], capture_output=True, check=True).stdout
    return list(struct.unpack("<%dh" % (len(raw) // 2), raw))

def to_mulaw(src, dst):
    subprocess.run(["sox", "-R", src, "-e", "u-law", dst], check=True)

def tones(keys, dbm0, alignments=8, twist=0.0, offset=(0.0, 0.0), on=70, off=70, rng=None):
    """Samples and tone spans: each key's onset at (k mod alignments) * 160/alignments + a few
    samples into a 160-sample packet."""
    rng = rng or random.Random(1)
    out, spans = [0.0] * 800, []
    for n, k in enumerate(keys):
        lo, hi = freqs(k)
        lo *= 1 + offset[0]; hi *= 1 + offset[1]
        # pad to the next packet, then to the alignment
        out += [0.0] * ((-len(out)) % 160 + (n % alignments) * (160 // alignments) + rng.randrange(3))
        a_lo, a_hi = amp(dbm0), amp(dbm0 + twist)
        p1, p2 = rng.random() * 6.28, rng.random() * 6.28
        start = len(out)
        for i in range(on * 8):
            t = i / 8000
            out.append(a_lo * math.sin(2 * math.pi * lo * t + p1) + a_hi * math.sin(2 * math.pi * hi * t + p2))
        spans.append((start, len(out)))
        out += [0.0] * (off * 8)
    out += [0.0] * 800
    return out, spans

def mix_into(speech, keys, dbm0, rng, ms=70):
    out = [float(x) for x in speech]
    spans = []
    gap = len(out) // (len(keys) + 1)
    for n, k in enumerate(keys):
        lo, hi = freqs(k)
        start = (n + 1) * gap + rng.randrange(-400, 400)
        p1, p2 = rng.random() * 6.28, rng.random() * 6.28
        for i in range(ms * 8):
            t = i / 8000
            out[start + i] += amp(dbm0) * (math.sin(2 * math.pi * lo * t + p1) + math.sin(2 * math.pi * hi * t + p2))
        spans.append((start, start + ms * 8))
    return out, spans

def detect(path):
    """Digits each detector finds in a WAV: tonegate, spandsp, multimon-ng; then the three again
    on the file normalised to full scale."""
    res = {}
    norm = path + ".norm.wav"
    subprocess.run(["sox", "-R", "--norm", path, "-e", "signed", "-b", "16", norm], check=True, capture_output=True)
    for tag, p in (("", path), ("norm ", norm)):
        j = subprocess.run([tonegate, "replay", p, "--format", "json"], capture_output=True, text=True).stdout
        res[tag + "tonegate"] = sum(1 for l in j.splitlines() if '"key"' in l)
        raw = subprocess.run(["sox", "-R", p, "-t", "raw", "-e", "signed", "-b", "16", "-r", "8000", "-c", "1", "-"], capture_output=True, check=True).stdout
        sp = subprocess.run([harness, "detect"], input=raw, capture_output=True).stdout.decode()
        res[tag + "spandsp"] = len([l for l in sp.splitlines() if l.strip()])
        raw22 = subprocess.run(["sox", "-R", p, "-t", "raw", "-e", "signed", "-b", "16", "-r", "22050", "-c", "1", "-"], capture_output=True, check=True).stdout
        mm = subprocess.run(["multimon-ng", "-q", "-c", "-a", "DTMF", "-t", "raw", "-"], input=raw22, capture_output=True).stdout.decode()
        res[tag + "multimon-ng"] = sum(1 for l in mm.splitlines() if l.startswith("DTMF:"))
    os.remove(norm)
    return res

def mask(src, dst):
    """`tonegate mask`: the packets it scrubbed."""
    r = subprocess.run([tonegate, "mask", src, dst, "--replacement", replacement], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("tonegate mask %s: %s" % (src, r.stderr))
    return int(r.stderr.split(" audio packets, ")[1].split(" scrubbed")[0])

relayed_all = []  # every relay run's Relayed, for the totals
def relay_mask_wav(src, dst):
    """The relay path: `src` through a live relay call, the forwarded audio to `dst`."""
    r = relay.mask(src, dst)
    relayed_all.append(r)
    return r

def relay_line(runs):
    """The relay's packet counts and added latency over a set's runs."""
    sent = sum(r.audio_sent for r in runs); lost = sum(r.lost for r in runs)
    odd = sum(r.header_changes + r.unmatched for r in runs)
    lat = [x for r in runs for x in r.latencies]
    return ("Relay: %d calls, %d/%d packets forwarded (%d lost), %s; added latency per packet %s."
            % (sum(r.calls for r in runs), sent - lost, sent, lost,
               "every header as sent" if odd == 0 else "%d headers changed or datagrams unmatched" % odd,
               relay_mask.latency_line(lat)))

DETS = ["tonegate", "spandsp", "multimon-ng", "norm tonegate", "norm spandsp", "norm multimon-ng"]
def report(title, cases, speech_minutes=None):
    """cases: (name, input wav, spans or None). Digits recovered from the `tonegate mask`
    outputs, and from the relay's."""
    print("\n### %s\n" % title)
    print("| input | tones | " + " | ".join("%s in / mask / relay" % d for d in DETS) + " | leaked ms per tone (min/median/max) | collateral ms per tone (median/max) | scrubbed packets mask / relay | samples relay ≠ mask |")
    print("|---|---|" + "---|" * len(DETS) + "---|---|---|---|")
    tot_in = {d: 0 for d in DETS}; tot_out = {d: 0 for d in DETS}; tot_relay = {d: 0 for d in DETS}
    all_leak, all_coll = [], []
    runs, tot_scrub, tot_differ = [], [0, 0], 0
    for name, src, spans in cases:
        dst, rdst = src + ".masked.wav", src + ".relayed.wav"
        scrubbed = mask(src, dst)
        r = relay_mask_wav(src, rdst)
        runs.append(r)
        a, b, c = detect(src), detect(dst), detect(rdst)
        for d in DETS:
            tot_in[d] += a[d]; tot_out[d] += b[d]; tot_relay[d] += c[d]
        x, y, z = read_pcm(src), read_pcm(dst), read_pcm(rdst)
        differ = sum(1 for i in range(len(y)) if y[i] != z[i]) + abs(len(y) - len(z))
        tot_scrub[0] += scrubbed; tot_scrub[1] += r.scrubbed; tot_differ += differ
        leak, coll = [], []
        if spans is not None:
            inside = [False] * len(x)
            for s, e in spans:
                for i in range(s, e): inside[i] = True
            changed = [x[i] != y[i] for i in range(len(x))]
            for s, e in spans:
                leak.append(sum(1 for i in range(s, e) if not changed[i] and x[i] != 0) / 8)
                # collateral: changed samples outside any tone within 40 ms of this one
                coll.append(sum(1 for i in range(max(0, s - 320), min(len(x), e + 320)) if changed[i] and not inside[i]) / 8)
            all_leak += leak; all_coll += coll
        fmt = lambda v: "%.1f/%.1f/%.1f" % (min(v), statistics.median(v), max(v)) if v else "-"
        fmt2 = lambda v: "%.1f/%.1f" % (statistics.median(v), max(v)) if v else "-"
        print("| %s | %s | " % (name, len(spans) if spans is not None else "-") + " | ".join("%d / %d / %d" % (a[d], b[d], c[d]) for d in DETS) + " | %s | %s | %d / %d | %d |" % (fmt(leak), fmt2(coll), scrubbed, r.scrubbed, differ))
    fmt = lambda v: "%.1f/%.1f/%.1f" % (min(v), statistics.median(v), max(v)) if v else "-"
    fmt2 = lambda v: "%.1f/%.1f" % (statistics.median(v), max(v)) if v else "-"
    print("| **all** | %d | " % sum(len(c[2] or []) for c in cases) + " | ".join("%d / **%d** / **%d**" % (tot_in[d], tot_out[d], tot_relay[d]) for d in DETS) + " | %s | %s | %d / %d | %d |" % (fmt(all_leak), fmt2(all_coll), tot_scrub[0], tot_scrub[1], tot_differ))
    print("\n" + relay_line(runs))
    if all_coll and max(all_coll) > 20:
        collateral_over.append("%s: %.1f ms muted around one tone (target: 20)" % (title, max(all_coll)))
    return sum(tot_out.values()), sum(tot_relay.values())

t0 = time.time()
failures = [0, 0]  # digits recovered: `tonegate mask`, relay
collateral_over = []  # collateral over the targets (docs/masking.md)
def add(found):
    failures[0] += found[0]; failures[1] += found[1]
rng = random.Random(20240601)
# 1. Q.24 conformance WAVs (the masked copy of each, whatever the row expects unmasked).
cases = [(os.path.basename(p)[:-4], p, None) for p in sorted(glob.glob("fixtures/inband/*.wav"))]
import shutil
q = []
for name, p, _ in cases:
    d = os.path.join(work, "q24-" + name + ".wav"); shutil.copy(p, d); q.append((name, d, None))
add(report("Q.24 conformance WAVs (fixtures/inband, mu-law)", q))
# 2. Levels -5 .. -70 dBm0, 16 keys, 8 onset alignments in a 20 ms packet, mu-law.
lv = []
for level in range(-5, -75, -5):
    s, spans = tones(KEYS, level, rng=rng)
    pcm = os.path.join(work, "level%d.pcm.wav" % level); write_pcm(pcm, s)
    mu = os.path.join(work, "level%d.wav" % level); to_mulaw(pcm, mu)
    lv.append(("%d dBm0" % level, mu, spans))
add(report("Levels: 16 keys, 70 ms on / 70 ms off, 8 onset alignments (mu-law)", lv))
# 3. Twist and frequency offsets, at -20 and -50 dBm0.
st = []
for level in (-20, -50):
    for label, twist, off in (("twist +4 dB", 4.0, (0, 0)), ("twist -8 dB", -8.0, (0, 0)),
                              ("low +1.5 %", 0, (0.015, 0)), ("low -1.5 %", 0, (-0.015, 0)),
                              ("high +1.5 %", 0, (0, 0.015)), ("high -1.5 %", 0, (0, -0.015)),
                              ("both +1.5 %, twist -8", -8.0, (0.015, 0.015))):
        s, spans = tones(KEYS, level, twist=twist, offset=off, rng=rng)
        pcm = os.path.join(work, "st.pcm.wav"); write_pcm(pcm, s)
        mu = os.path.join(work, "stress%d-%d.wav" % (-level, len(st))); to_mulaw(pcm, mu)
        st.append(("%s, %d dBm0" % (label, level), mu, spans))
add(report("Twist and frequency offsets (mu-law)", st))
# 4. Keys mixed into speech, and speech alone (collateral per minute).
voices = sorted(glob.glob("/usr/share/asterisk/sounds/*/"))
sp = []
speech_alone = []
for v in voices:
    files = sorted(glob.glob(v + "*.wav"))
    rng.shuffle(files)
    for n in range(2):
        chosen, total = [], []
        for f in files[n * 12:(n + 1) * 12]:
            total += read_pcm(f)
        # Keys as long as the shortest a receiver must accept (40 ms) and as phones send them
        # (70 ms), from as loud as the speech to well under it.
        for level, ms in ((-20, 70), (-20, 40), (-25, 70), (-25, 40), (-30, 70), (-30, 40), (-35, 70)):
            mixed, spans = mix_into(total, KEYS, level, rng, ms)
            pcm = os.path.join(work, "mix.pcm.wav"); write_pcm(pcm, mixed)
            mu = os.path.join(work, "mix-%s-%d-%d-%d.wav" % (os.path.basename(v[:-1]), n, -level, ms)); to_mulaw(pcm, mu)
            sp.append(("%s set %d, %d ms keys at %d dBm0" % (os.path.basename(v[:-1]), n, ms, level), mu, spans))
    alone = []
    for f in files[:200]:
        alone += read_pcm(f)
    pcm = os.path.join(work, "alone.pcm.wav"); write_pcm(pcm, alone)
    mu = os.path.join(work, "speech-%s.wav" % os.path.basename(v[:-1])); to_mulaw(pcm, mu)
    speech_alone.append((os.path.basename(v[:-1]), mu, len(alone) / 8000 / 60))
add(report("16 keys mixed into Debian speech prompts (12 prompts a set, mu-law)", sp))
print("\n### Speech with no key (Debian prompts, mu-law): collateral\n")
print("| voice | minutes | ms replaced mask / relay | ms per minute mask / relay | samples relay ≠ mask | tonegate / spandsp / multimon-ng digits in the input |")
print("|---|---|---|---|---|---|")
runs = []
for name, mu, minutes in speech_alone:
    dst, rdst = mu + ".masked.wav", mu + ".relayed.wav"
    mask(mu, dst); runs.append(relay_mask_wav(mu, rdst))
    x, y, z = read_pcm(mu), read_pcm(dst), read_pcm(rdst)
    changed = sum(1 for i in range(len(x)) if x[i] != y[i]) / 8
    rchanged = sum(1 for i in range(len(x)) if x[i] != z[i]) / 8
    differ = sum(1 for i in range(len(y)) if y[i] != z[i]) + abs(len(y) - len(z))
    d = detect(mu)
    print("| %s | %.1f | %.0f / %.0f | %.1f / %.1f | %d | %d / %d / %d |" % (name, minutes, changed, rchanged, changed / minutes, rchanged / minutes, differ, d["tonegate"], d["spandsp"], d["multimon-ng"]))
    if max(changed, rchanged) / minutes >= 100:
        collateral_over.append("%s: %.1f ms of speech muted a minute (target: under 100)" % (name, max(changed, rchanged) / minutes))
print("\n" + relay_line(runs))
# 4b. Packets reordered within the jitter window: a capture of the input whose packets arrive
# out of order (each packet moved up to two places), masked by `tonegate mask`, its audio put
# back in timestamp order for the detectors. Hang-over follows media time, not arrival.
print("\n### Packets reordered (each moved up to two places), masked from a capture (mu-law)\n")
print("| input | tones | packets out of order | " + " | ".join("%s in / out" % d for d in DETS) + " | leaked ms per tone (min/median/max) |")
print("|---|---|---|" + "---|" * len(DETS) + "---|")
reorder_rng = random.Random(7)
reordered_out = 0
for name, src, spans in [c for c in lv if c[0] in ("-10 dBm0", "-30 dBm0", "-50 dBm0", "-70 dBm0")] + sp[::6]:
    tag, data = relay_mask.read_wav(src)
    chunks = [data[i:i + 160] for i in range(0, len(data), 160)]
    order = list(range(len(chunks)))
    for i in range(0, len(order) - 2):
        if reorder_rng.random() < 0.3:
            j = i + reorder_rng.choice((1, 2))
            order[i], order[j] = order[j], order[i]
    moved = sum(1 for i, o in enumerate(order) if i != o)
    records = []
    for k, n in enumerate(order):
        pkt = relay_mask.rtp(0, 1000 + n, 160 * n, 0x5EED, chunks[n], marker=n == 0)
        records.append((k // 50, (k % 50) * 20_000_000, relay_mask.ipv4_udp(("127.0.0.1", 40000), ("127.0.0.1", 40002), pkt)))
    cap, out_cap = src + ".reordered.pcap", src + ".reordered.masked.pcap"
    relay_mask.write_pcap(cap, records)
    r = subprocess.run([tonegate, "mask", cap, out_cap, "--replacement", replacement], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("tonegate mask %s: %s" % (cap, r.stderr))
    link, frames = relay_mask.read_pcap(out_cap)
    got = {}
    for _, _, frame in frames:
        u = relay_mask.udp_of(link, frame)
        h = u and relay_mask.rtp_header(u[2])
        if h and h[0] == 0:
            got[h[3] // 160] = u[2][h[5]:]
    body = b"".join(got.get(n, b"\xff" * len(c)) for n, c in enumerate(chunks))
    dst = src + ".reordered.masked.wav"
    relay_mask.write_wav(dst, tag, body)
    a, b = detect(src), detect(dst)
    reordered_out += sum(b.values())
    x, y = read_pcm(src), read_pcm(dst)
    leak = [sum(1 for i in range(s0, e0) if x[i] == y[i] and x[i] != 0) / 8 for s0, e0 in spans]
    print("| %s | %d | %d | " % (name, len(spans), moved) + " | ".join("%d / %d" % (a[d], b[d]) for d in DETS) + " | %.1f/%.1f/%.1f |" % (min(leak), statistics.median(leak), max(leak)))
add((reordered_out, 0))
# 5. Real captures: tonegate replay (RFC 4733 and in-band) before and after.
print("\n### Real captures (fixtures/real): tonegate replay, RFC 4733 and in-band\n")
print("| capture | presses in | presses out mask / relay | what `tonegate mask` said | what the relay did (a call per RTP flow) |")
print("|---|---|---|---|---|")
runs = []
for p in sorted(glob.glob("fixtures/real/*.pcap")):
    dst = os.path.join(work, os.path.basename(p) + ".masked.pcap")
    rdst = os.path.join(work, os.path.basename(p) + ".relayed.pcap")
    r = subprocess.run([tonegate, "mask", p, dst, "--replacement", replacement], capture_output=True, text=True, check=True)
    rr = relay.mask_capture(p, rdst); runs.append(rr); relayed_all.append(rr)
    count = lambda f: sum(1 for l in subprocess.run([tonegate, "replay", f, "--format", "json"], capture_output=True, text=True).stdout.splitlines() if '"key"' in l)
    a, b, c = count(p), count(dst), count(rdst)
    add((b, c + rr.events_forwarded))
    print("| %s | %d | %d / %d | %s | %s |" % (os.path.basename(p), a, b, c, r.stderr.strip().split(": ", 1)[-1], rr.describe()))
print("\n" + relay_line(runs))
# 6. The relay's added latency: every run above (lockstep), one input at real-time pacing, and
# what our own sockets add with no gateway between.
print("\n### Relay latency (send to receive at the relay_to socket, per packet)\n")
print("Load average before: %.2f %.2f %.2f (1, 5, 15 min)\n" % os.getloadavg())
name, src, _ = sp[0]
paced_dst = os.path.join(work, "paced.wav")
paced = relay.mask(src, paced_dst, pace=0.02, limit=500)
same = relay_mask.read_wav(paced_dst)[1] == relay_mask.read_wav(src + ".relayed.wav")[1][:500 * 160]
print("| pacing | packets forwarded | min/median/p99/max |")
print("|---|---|---|")
lat = [x for r in relayed_all for x in r.latencies]
print("| lockstep (each packet sent when the one before came back), every input above | %d/%d | %s |" % (len(lat), sum(r.audio_sent for r in relayed_all), relay_mask.latency_line(lat, True)))
print("| 20 ms (real time), the first 10 s of %s; output %s the lockstep run's | %d/%d | %s |" % (name, "identical to" if same else "**differs** from", len(paced.latencies), paced.audio_sent, relay_mask.latency_line(paced.latencies, True)))
print("| no gateway: our socket to our socket on 127.0.0.1 (included in every figure above) | 2000 | %s |" % relay_mask.latency_line(relay.baseline(), True))
lost = sum(r.lost for r in relayed_all) + paced.lost
odd = sum(r.header_changes + r.unmatched for r in relayed_all) + paced.header_changes + paced.unmatched + (not same)
stopped = relay.stop()
problems = []
if failures[0] or failures[1]:
    problems.append("digits recovered from masked outputs: %d from `tonegate mask`'s, %d from the relay's" % tuple(failures))
problems += collateral_over
if lost or odd:
    problems.append("relay: %d packets lost, %d headers changed, datagrams unmatched or paced output different" % (lost, odd))
if stopped != 0:
    problems.append("tonegate serve exited with %s on SIGTERM" % stopped)
print("\n%.0f s; %s" % (time.time() - t0, "; ".join(problems) if problems else "every masked output: no digit for any detector"))
sys.exit(1 if problems else 0)
PY
