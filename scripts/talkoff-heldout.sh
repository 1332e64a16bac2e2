#!/usr/bin/env bash
# Held-out in-band talk-off run: real recorded speech and music from Debian packages that
# were NOT used to tune the detector (scripts/talkoff.sh's corpus was), converted the way a
# G.711 call carries them, through tonegate's detector and spandsp's, in one run.
#   scripts/talkoff-heldout.sh [--list]        extra arguments go to `tonegate talkoff`
#   TALKOFF_BAND=phone scripts/talkoff-heldout.sh   the same audio band-limited to 300-3400 Hz
#   TALKOFF_SET=fresh scripts/talkoff-heldout.sh    the fresh set (below) instead
#   TALKOFF_SET=final scripts/talkoff-heldout.sh    the final set (below) instead
#   TALKOFF_PREPARE_ONLY=1 scripts/talkoff-heldout.sh   fetch and convert only: print files
#                                                   and hours per corpus and the digest, run
#                                                   no detector
#
# Three sets of packages, each with its own cache (docs/benchmarks.md, "Held-out talk-off"):
#   TALKOFF_SET=heldout (default)  target/talkoff-heldout: the held-out set. Its music's false
#                                  presses became the development set of later detector work.
#   TALKOFF_SET=fresh              target/talkoff-fresh: other packages again, kept unseen
#                                  while the detector was changed: the final test set, to be
#                                  run once at the end. Prepare it with TALKOFF_PREPARE_ONLY=1;
#                                  do not look at detector results on it before then.
#                                  Its result was used to develop the next change, so it is
#                                  spent as a test.
#   TALKOFF_SET=final              target/talkoff-final: other packages again, prepared before
#                                  that next change and kept unseen: the third test, run once
#                                  when the detector work is done. Same rules as fresh.
#
# Long run (heldout: ~9 minutes the first time, 512 MB of .deb, 12 h of audio converted, ~40 s
# after; fresh: 1.5 GB of .deb, 11.6 h; final: 1.08 GB of .deb, 11.3 h): not part of scripts/test.sh
# or CI. Needs ~2.5 GB under target/talkoff-heldout with both bands, ~3.3 GB under
# target/talkoff-fresh, ~2.6 GB under target/talkoff-final.
#
# The packages are fetched with `apt-get download` and unpacked into target/ with
# `dpkg-deb -x`, not installed: installing the other Asterisk languages would put them under
# /usr/share/asterisk/sounds, next to the tuning corpus, and the game music would land in
# /usr/share/games. Only the tools are installed (sox with its ogg/gsm readers, opus-tools
# for Warzone 2100's .opus, unzip for Nexuiz's .pk3).
#
# Conversion, every file alike (docs/benchmarks.md, "Held-out talk-off"):
#   [opusdec --float IN TMP.wav;] sox -D IN -t wav -e u-law -c 1 - remix - gain -3 rate -v 8000 \
#     | sox -t wav - -e signed-integer -b 16 OUT.wav
# i.e. all channels averaged to mono, 3 dB of fixed headroom (the resampler's overshoot on
# full-scale masters), sox's very-high-quality resampler to 8 kHz (its anti-alias filter is
# the only band limit: a SIP/G.711 leg carries 0-4 kHz), G.711 mu-law without dither (what
# the gateway receives), and back to 16-bit PCM. No level normalisation. With
# TALKOFF_BAND=phone, `sinc 300-3400` after the resampler as well (an analogue or PSTN leg
# on the way). Output: target/talkoff-SET/{speech,music}/PACKAGE/... (phone-speech,
# phone-music), kept between runs; a package whose Debian version changed is unpacked and
# converted again.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Each entry: "package|files to take" (extended regex on the path inside the package).
case ${TALKOFF_SET:-heldout} in
heldout)
  cache=target/talkoff-heldout
  # Speech: six voices in five languages, none of them en_US_f_Allison's English prompts.
  speech_pkgs=(
    'asterisk-core-sounds-fr-wav|\.(wav|gsm)'    # fr_CA_f_June, 8 kHz WAV
    'asterisk-core-sounds-es-wav|\.(wav|gsm)'    # es_MX_f_Allison (the tuning corpus's speaker, in Spanish)
    'asterisk-core-sounds-ru-wav|\.(wav|gsm)'    # ru_RU_f_IvrvoiceRU
    'asterisk-core-sounds-it-wav|\.(wav|gsm)'    # it_IT_m_Carlo (male)
    'asterisk-prompt-it-menardi-wav|\.(wav|gsm)' # it_IT_f_Menardi
    'asterisk-prompt-fr-armelle|\.(wav|gsm)'     # French, Armelle Desjardins, GSM 06.10
    'asterisk-prompt-es-co|\.(wav|gsm)'          # Colombian Spanish, GSM 06.10
  )
  # Music: orchestral, electronic/techno with drums, rock/electronic, ambient, an adventure
  # game's score.
  music_pkgs=(
    'wesnoth-1.16-music|/music/.*\.ogg'                  # orchestral
    'nexuiz-music|/music/sound/cdtracks/.*\.ogg'         # electronic, drums (in music.pk3)
    'warzone2100-music|\.opus'                           # rock/electronic, ambient
    'singularity-music|\.ogg'                            # ambient, piano, strings
    'drascula-music|/drascula/audio/.*\.ogg'             # de/ en/ ... are identical copies
  )
  ;;
fresh)
  cache=target/talkoff-fresh
  # Speech: voice actors in whole sentences (Fish Fillets' dialogues, Czech and Dutch: several
  # male and female voices) and Hedgewars' voice packs (short exclamations, 15 voices, accents,
  # one sung, one robotised). No Asterisk prompts: every language Debian has is in the
  # tuning or the held-out set.
  speech_pkgs=(
    'fillets-ng-data-cs|/sound/.*/cs/[^/]*\.ogg'            # Czech dialogues
    'fillets-ng-data-nl|/sound/.*/nl/[^/]*\.ogg'            # Dutch dialogues
    'hedgewars-data|/Data/Sounds/voices/.*\.ogg'            # game voice packs
  )
  # Music: orchestral (Widelands, MegaGlest, Mars), strings and woodwinds, piano, rock/metal,
  # electronic, chiptune-style synth (SuperTux), folk/ethnic (Hedgewars). Game music in ogg
  # only; tracker modules (Pingus' .it) would need a module renderer and are left out.
  music_pkgs=(
    'widelands-data|/widelands/data/music/.*\.ogg'          # orchestral, 31 tracks
    'hedgewars-data|/Data/Music/.*\.ogg'                    # varied themes: folk, rock, oriental
    'supertux-data|/supertux2/music/.*\.ogg'                # synth/chiptune, orchestral-ish
    'marsshooter-data|/audio/music/.*\.ogg'                 # orchestral, metal
    'freedroidrpg-data|/sound/music/.*\.ogg'                # electronic, ambient
    'megaglest-data|/music/.*\.ogg'                         # orchestral, ethnic, medieval
    'warmux-data|/warmux/music/.*\.ogg'                     # light orchestral, flute, rock
    'fillets-ng-data|/fillets-ng/music/.*\.ogg'             # small ensemble, 22 kHz mono
    'lincity-ng-data|/music/.*\.ogg'                        # piano, blues, ambient
  )
  ;;
final)
  cache=target/talkoff-final
  # Speech: KDE's recorded letters, syllables and words (KLettres, KTuberling), many speakers
  # in 20 + 22 languages, short clips. Recorded voices, no synthesis.
  speech_pkgs=(
    'klettres-data|/klettres/.*\.ogg'                       # letters and syllables, 20 languages
    # spoken words, 22 languages (sr@latin, sr@ijekavian... are copies of sr/: left out)
    'ktuberling-data|/ktuberling/sounds/[^@/]+/[^/]*\.(ogg|wav|opus)'
  )
  # Music: mostly orchestral and cinematic game scores (UFO: AI, Naev, Flare, OpenClonk,
  # Adonthell), electronic/orchestral (Colobot), themed styles (Pushover, HyperRogue), metal
  # (Fret's on Fire: the backing track and the guitar track of each song, as shipped).
  music_pkgs=(
    'ufoai-music|/base/0music/music/.*\.ogg'                # orchestral, electronic (in 0music.pk3)
    'naev-data|/naev/dat/snd/music/.*\.ogg'                 # orchestral, ambient, synth
    'colobot-common-sounds|/colobot/music/.*\.ogg'          # electronic, orchestral
    'flare-game|/flare/mods/[^/]*/music/.*\.ogg'            # fantasy orchestral
    'openclonk-data|/openclonk/Music\.ocg/.*\.ogg'          # orchestral, ambient
    'pushover-data|/pushover/themes/.*\.ogg'                # themes: aztec, castle, greek, japanese...
    'hyperrogue-music|/hyperrogue/music/.*\.ogg'            # varied themes, ambient
    'adonthell-data|/wastesedge/audio/.*\.ogg'              # an RPG's score
    'fretsonfire-songs-muldjord|/songs/muldjord/.*\.ogg'    # metal: song.ogg and guitar.ogg
  )
  ;;
*) echo "TALKOFF_SET: heldout, fresh or final" >&2; exit 2 ;;
esac

case ${TALKOFF_BAND:-} in
  "") prefix= BAND_EFFECT= ;;
  phone) prefix=phone- BAND_EFFECT=300-3400 ;;
  *) echo "TALKOFF_BAND: '' or phone" >&2; exit 2 ;;
esac
export BAND_EFFECT
mkdir -p "$cache/deb" "$cache/src" "$cache/${prefix}speech" "$cache/${prefix}music"

tools=()
command -v sox >/dev/null 2>&1 || tools+=(sox)
dpkg -s libsox-fmt-all >/dev/null 2>&1 || tools+=(libsox-fmt-all)
command -v opusdec >/dev/null 2>&1 || tools+=(opus-tools)
command -v unzip >/dev/null 2>&1 || tools+=(unzip)
updated=
apt_update() {
  if [ -z "$updated" ]; then
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    updated=1
  fi
}
if ((${#tools[@]})); then
  echo "== installing ${tools[*]} (Debian) to decode the held-out audio" >&2
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${tools[@]}" >/dev/null
fi

# One source file to one 8 kHz WAV (the chain above). Written to a temporary name first so
# that an interrupted run never leaves a half file that a later run would skip.
convert() {
  set -o pipefail
  local in=$1 out=$2
  [ -s "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  local chain=(-t wav -e u-law -c 1 - remix - gain -3 rate -v 8000) tmp
  [ -z "$BAND_EFFECT" ] || chain+=(sinc "$BAND_EFFECT")
  tmp=$(mktemp --suffix=.wav)
  {
    if [[ $in == *.opus ]]; then # sox has no opus reader: decode to float WAV first
      opusdec --quiet --float "$in" "$tmp" && sox -D -V1 "$tmp" "${chain[@]}"
    else
      sox -D -V1 "$in" "${chain[@]}"
    fi | sox -V1 -t wav - -t wav -e signed-integer -b 16 "$out.part"
  } || { echo "cannot convert $in" >&2; rm -f "$out.part" "$tmp"; return 1; }
  rm -f "$tmp"
  mv "$out.part" "$out"
}
export -f convert

# Fetch and unpack one package (when its Debian version is not the one already unpacked),
# then convert the files matching $2 into $3/PACKAGE/ (the path under usr/share/, '/' -> '_').
# A package can give both speech and music (fresh: hedgewars-data): on a new version, every
# corpus and band converted from it is dropped, not only the one being prepared.
prepare() {
  local pkg=$1 match=$2 kind=$3
  local src=$cache/src/$pkg out=$cache/$prefix$kind/$pkg
  local ver
  ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    apt_update
    ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  fi
  if [ "$(cat "$src/.version" 2>/dev/null)" != "$ver" ]; then
    echo "== $pkg $ver: download and unpack" >&2
    rm -rf "$src" "$cache/deb/${pkg}"_*.deb "$cache"/{,phone-}{speech,music}/"$pkg"
    # (as root apt warns that the download is not sandboxed: harmless, hidden)
    (cd "$cache/deb" && apt-get download -qq "$pkg=$ver" 2>/dev/null) ||
      { echo "apt-get download $pkg=$ver failed" >&2; exit 1; }
    mkdir -p "$src"
    dpkg-deb -x "$cache/deb/${pkg}"_*.deb "$src"
    rm -f "$cache/deb/${pkg}"_*.deb
    find "$src" -name '*.pk3' -exec sh -c 'unzip -qq -o -d "${1%.pk3}" "$1"' _ {} \;
    echo "$ver" >"$src/.version"
  fi
  echo "$pkg $ver" >>"$cache/versions.tmp"
  find "$src" -type f -regextype posix-extended -regex ".*${match}\$" -not -path '*/doc/*' \
    -print0 | sort -z | while IFS= read -r -d '' f; do
    rel=${f#"$src"/usr/share/}
    rel=${rel//\//_}
    printf '%s\0%s\0' "$f" "$out/${rel%.*}.wav"
  done | xargs -0 -n 2 -P "$(nproc)" bash -c 'convert "$0" "$1"'
}

rm -f "$cache/versions.tmp"
for entry in "${speech_pkgs[@]}"; do prepare "${entry%%|*}" "${entry#*|}" speech; done
for entry in "${music_pkgs[@]}"; do prepare "${entry%%|*}" "${entry#*|}" music; done
sort -u "$cache/versions.tmp" >"$cache/versions.txt" && rm -f "$cache/versions.tmp"

echo "== packages (Debian versions) in $cache/versions.txt; corpus digest:" >&2
(cd "$cache" && find "${prefix}speech" "${prefix}music" -name '*.wav' -print0 | sort -z | xargs -0 sha256sum |
  sha256sum | cut -c1-16) >&2

if [ -n "${TALKOFF_PREPARE_ONLY:-}" ] && [ "$TALKOFF_PREPARE_ONLY" != 0 ]; then
  # Corpus only, no detector: files and hours (from the WAV headers) per corpus.
  for kind in speech music; do
    find "$cache/$prefix$kind" -name '*.wav' -print0 | sort -z | xargs -0 -r soxi -D |
      awk -v dir="$cache/$prefix$kind" '{ s += $1; n++ }
        END { printf "%s: %d files, %.3f h\n", dir, n, s / 3600 }'
  done
  cat "$cache/versions.txt"
  exit 0
fi

scripts/spandsp.sh >/dev/null
cargo run --release --locked -q -p tonegate -- talkoff \
  --speech "$cache/${prefix}speech" --music "$cache/${prefix}music" "$@"
