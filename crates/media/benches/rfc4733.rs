//! Throughput of RTP parsing + RFC 4733 decoding, in packets per second on one core.
//!
//! `cargo bench -p tonegate-media --bench rfc4733` (scripts/bench.sh runs it). Two mixes:
//! `events-only` (every packet a telephone-event: the decoder's worst case) and `call` (PCMU
//! audio every 20 ms with key presses between, the realistic case), each over 8 SSRCs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tonegate_media::rfc4733::{DecoderConfig, Rfc4733Decoder};
use tonegate_testkit::phone::press_event;
use tonegate_testkit::rtp;

/// `n` packets per SSRC, 8 SSRCs interleaved: presses of 100 ms (5 updates + 3 ends), with
/// `audio_between` packets of 160-byte PCMU between presses.
fn mix(n: usize, audio_between: usize) -> Vec<Vec<u8>> {
    let audio = [0xFFu8; 160];
    let mut per_ssrc: Vec<Vec<Vec<u8>>> = Vec::new();
    for s in 0..8u32 {
        let ssrc = 0x1000 + s;
        let mut out = Vec::with_capacity(n);
        let (mut seq, mut ts, mut code) = (0u16, 0u32, 0u8);
        while out.len() < n {
            for d in 1..=8u16 {
                let e = press_event(code, d);
                out.push(rtp::packet(101, false, seq, ts, ssrc, &e.to_bytes()));
                seq = seq.wrapping_add(1);
            }
            ts = ts.wrapping_add(800);
            for _ in 0..audio_between {
                out.push(rtp::packet(0, false, seq, ts, ssrc, &audio));
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
            code = (code + 1) % 16;
        }
        out.truncate(n);
        per_ssrc.push(out);
    }
    (0..n)
        .flat_map(|i| per_ssrc.iter().map(move |p| p[i].clone()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+decode");
    for (name, audio_between) in [("events-only", 0), ("call", 10)] {
        let packets = mix(4096, audio_between);
        group.throughput(Throughput::Elements(packets.len() as u64));
        group.bench_function(name, |b| {
            let origin = Instant::now();
            b.iter(|| {
                let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
                let mut presses = 0u32;
                for (i, p) in packets.iter().enumerate() {
                    let now = origin + Duration::from_micros(i as u64 * 2500);
                    decoder.handle_packet(now, black_box(p)).unwrap();
                    while let Some(e) = decoder.poll_event() {
                        presses += u32::from(matches!(
                            e,
                            tonegate_media::rfc4733::DecoderEvent::Press { .. }
                        ));
                    }
                }
                black_box(presses)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
