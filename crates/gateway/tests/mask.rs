//! `tonegate mask`: WAV and capture paths, the errors, and the reason it exists: tones far
//! below any detector's level floor are gone even when the output is amplified to full scale.

use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etherparse::PacketBuilder;
use tonegate_media::g711::{Law, FULL_SCALE_SINE_DBM0};
use tonegate_media::inband::{InbandDetector, InbandEvent};
use tonegate_media::wav::{read_wav, write_wav, WavEncoding};
use tonegate_media::{ClockRate, MediaTime};

const KEYS: &str = "123A456B789C*0#D";
const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

fn tonegate(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tonegate"))
        .arg("mask")
        .args(args)
        .output()
        .expect("tonegate runs")
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tonegate-mask-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 16 keys, 70 ms on and 70 off, each at another onset inside a 20 ms packet.
fn keys(dbm0: f32) -> Vec<i16> {
    let a = 32767.0 * 10f32.powf((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0);
    let mut out = vec![0i16; 800];
    for (n, _) in KEYS.chars().enumerate() {
        let (lo, hi) = (LOW[n / 4], HIGH[n % 4]);
        out.resize(out.len().next_multiple_of(160) + (n % 8) * 20 + n % 3, 0);
        for i in 0..560 {
            let t = i as f32 / 8000.0;
            let x = a * ((2.0 * PI * lo * t).sin() + (2.0 * PI * hi * t + 1.0).sin());
            out.push(x.round() as i16);
        }
        out.resize(out.len() + 560, 0);
    }
    out
}

/// Presses tonegate's detector finds in `samples` scaled so the loudest is full scale.
fn presses_normalised(samples: &[i16]) -> usize {
    let peak = samples
        .iter()
        .map(|&x| i32::from(x).abs())
        .max()
        .unwrap_or(0);
    let gain = if peak == 0 {
        1.0
    } else {
        32767.0 / peak as f32
    };
    let scaled: Vec<i16> = samples
        .iter()
        .map(|&x| (f32::from(x) * gain) as i16)
        .collect();
    let mut d = InbandDetector::default();
    d.handle_samples(MediaTime::new(0, ClockRate::NARROWBAND), &scaled)
        .unwrap();
    d.finish();
    std::iter::from_fn(|| d.poll_event())
        .filter(|e| matches!(e, InbandEvent::Press(_)))
        .count()
}

#[test]
fn tones_at_minus_60_dbm0_are_gone_even_amplified_to_full_scale() {
    let d = dir("quiet");
    for encoding in [WavEncoding::MuLaw, WavEncoding::Pcm16] {
        let input = d.join("in.wav");
        let output = d.join("out.wav");
        std::fs::write(&input, write_wav(&keys(-60.0), encoding)).unwrap();
        let o = tonegate(&[&input, &output]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let before = read_wav(&std::fs::read(&input).unwrap(), 0).unwrap();
        let after = read_wav(&std::fs::read(&output).unwrap(), 0).unwrap();
        assert_eq!(after.encoding, encoding);
        assert_eq!(after.samples.len(), before.samples.len());
        assert_eq!(
            presses_normalised(&before.samples),
            16,
            "{encoding:?} input"
        );
        assert_eq!(presses_normalised(&after.samples), 0, "{encoding:?} output");
    }
}

#[test]
fn a_wav_keeps_its_format_and_every_sample_outside_the_tones() {
    let d = dir("format");
    let mut samples = vec![0i16; 4000];
    let mut state = 7u32;
    for s in &mut samples {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *s = ((state >> 16) as i16) / 64;
    }
    for (n, replacement) in ["silence", "noise", "tone"].iter().enumerate() {
        let input = d.join(format!("in{n}.wav"));
        let output = d.join(format!("out{n}.wav"));
        std::fs::write(&input, write_wav(&samples, WavEncoding::ALaw)).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_tonegate"))
            .args(["mask", "--replacement", replacement])
            .args([&input, &output])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(
            std::fs::read(&input).unwrap(),
            std::fs::read(&output).unwrap()
        );
    }
}

fn rtp(seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        for v in [1000u32, (i * 20_000) as u32, f.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(f);
    }
    out
}

#[test]
fn a_capture_is_scrubbed_in_place_with_events_removed_and_checksums_right() {
    let d = dir("pcap");
    let audio: Vec<u8> = keys(-20.0)[..4000]
        .iter()
        .map(|&x| Law::Mu.encode(x))
        .collect();
    let mut frames = Vec::new();
    for (i, chunk) in audio.chunks(160).enumerate() {
        let (seq, ts) = (100 + i as u16, 8000 + 160 * i as u32);
        for v6 in [false, true] {
            let b = PacketBuilder::ethernet2([2; 6], [4; 6]);
            let b = if v6 {
                b.ipv6([1; 16], [2; 16], 64).udp(4002, 5002)
            } else {
                b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(4000, 5000)
            };
            let payload = rtp(seq, ts, 0, chunk);
            let mut f = Vec::new();
            b.write(&mut f, &payload).unwrap();
            frames.push(f);
        }
        if i % 10 == 5 {
            let b = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .udp(4000, 5000);
            let mut f = Vec::new();
            b.write(&mut f, &rtp(9000, ts, 101, &[1, 0x0a, 0, 160]))
                .unwrap();
            frames.push(f);
        }
    }
    let input = d.join("in.pcap");
    let output = d.join("out.pcap");
    std::fs::write(&input, pcap(&frames)).unwrap();
    let o = tonegate(&[&input, &output]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = std::fs::read(&output).unwrap();
    let reader = tonegate_media::capture::CaptureReader::new(&out).unwrap();
    let masked: Vec<Vec<u8>> = reader.map(|f| f.unwrap().data.to_vec()).collect();
    let kept: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|f| !(f.len() == 14 + 20 + 8 + 16 && f[14 + 20 + 8 + 1] == 101))
        .collect();
    assert_eq!(
        masked.len(),
        kept.len(),
        "telephone-events removed, nothing else"
    );
    let mut changed = 0;
    let mut heard = Vec::new();
    for (a, b) in kept.iter().zip(&masked) {
        assert_eq!(a.len(), b.len());
        let (sliced_a, sliced_b) = (
            etherparse::SlicedPacket::from_ethernet(a).unwrap(),
            etherparse::SlicedPacket::from_ethernet(b).unwrap(),
        );
        let (Some(etherparse::TransportSlice::Udp(ua)), Some(etherparse::TransportSlice::Udp(ub))) =
            (sliced_a.transport, sliced_b.transport)
        else {
            panic!("udp")
        };
        // Header (sequence number, timestamp, SSRC) kept.
        assert_eq!(ua.payload()[..12], ub.payload()[..12]);
        if ua.payload() != ub.payload() {
            changed += 1;
            match sliced_b.net {
                Some(etherparse::NetSlice::Ipv4(_)) => assert_eq!(ub.checksum(), 0),
                Some(etherparse::NetSlice::Ipv6(v6)) => {
                    let h = v6.header();
                    let expected = ub
                        .to_header()
                        .calc_checksum_ipv6_raw(h.source(), h.destination(), ub.payload())
                        .unwrap();
                    assert_eq!(ub.checksum(), expected);
                }
                _ => panic!("ip"),
            }
        } else {
            assert_eq!(*a, b, "an untouched frame is bit-exact");
        }
        if ub.source_port() == 4000 {
            heard.extend(
                ub.payload()[12..]
                    .iter()
                    .map(|&x| Law::Mu.table()[usize::from(x)]),
            );
        }
    }
    assert!(changed > 10, "{changed} datagrams changed");
    assert_eq!(presses_normalised(&heard), 0);
}

#[test]
fn unsupported_inputs_are_refused_with_the_reason() {
    let d = dir("errors");
    let out = d.join("out");
    let text = d.join("a.txt");
    std::fs::write(&text, "hello, not audio").unwrap();
    let stereo = d.join("stereo.wav");
    let mut w = write_wav(&[0; 160], WavEncoding::Pcm16);
    w[22] = 2; // channels
    w[28..32].copy_from_slice(&32000u32.to_le_bytes());
    w[32] = 4; // block align
    std::fs::write(&stereo, &w).unwrap();
    let wide = d.join("16k.wav");
    let mut w = write_wav(&[0; 160], WavEncoding::Pcm16);
    w[24..28].copy_from_slice(&16000u32.to_le_bytes());
    std::fs::write(&wide, &w).unwrap();
    let empty = d.join("empty.pcap");
    std::fs::write(&empty, pcap(&[])).unwrap();
    for (file, says) in [
        (text.as_path(), "not a WAV file or a pcap/pcapng capture"),
        (stereo.as_path(), "2 channels"),
        (wide.as_path(), "sample rate 16000 Hz"),
        (empty.as_path(), "no frame"),
        (Path::new("/nonexistent/x.wav"), "cannot open"),
    ] {
        let o = tonegate(&[file, &out]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(says), "{file:?}: {err}");
    }
    assert!(!out.exists(), "nothing written for a refused input");
}
