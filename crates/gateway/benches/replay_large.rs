//! End-to-end replay of a large generated capture, against the speed of reading it from disk.
//!
//! `cargo bench -p tonegate --bench replay_large` (scripts/bench.sh runs it). Writes
//! `target/tonegate-bench/large.pcap` (TONEGATE_BENCH_MIB, default 1024 MiB) once: 16 calls of
//! PCMU audio every 20 ms, each with a key press every second, over Ethernet/IPv4/UDP. Then:
//!
//! 1. reads the file with 1 MiB reads, from a cold page cache when the kernel lets us drop it
//!    (root, `/proc/sys/vm/drop_caches`), else warm, and says which; then with O_DIRECT (`dd`);
//! 2. runs `tonegate replay --format json FILE > /dev/null` the same way, and checks the number
//!    of key presses it printed;
//! 3. prints MB/s and packets/s for both, and whether replay keeps up with the disk.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use etherparse::PacketBuilder;
use tonegate_testkit::rtp;

const CALLS: u32 = 16;
const PRESS_EVERY: u32 = 50; // packets: one key press per second of each call

fn frame(call: u32, seq: u16, ts: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let packet = rtp::packet(pt, false, seq, ts, 0x5000_0000 + call, payload);
    let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 1, (call % 250) as u8], 64)
        .udp(20_000 + call as u16 * 2, 30_000 + call as u16 * 2);
    let mut out = Vec::with_capacity(builder.size(packet.len()));
    builder.write(&mut out, &packet).unwrap();
    out
}

/// Writes the capture; returns (packets, key presses) it holds.
fn generate(path: &Path, bytes: u64) -> std::io::Result<(u64, u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    let (mut written, mut packets, mut presses) = (24u64, 0u64, 0u64);
    let audio = [0xFFu8; 160];
    let mut tick = 0u32;
    while written < bytes {
        for call in 0..CALLS {
            let seq = tick as u16;
            let ts = tick.wrapping_mul(160);
            // Each cycle of PRESS_EVERY packets opens with one 100 ms key press: five updates
            // and three end packets, all stamped with the cycle's start; audio fills the rest.
            let phase = tick % PRESS_EVERY;
            let data = if phase < 8 {
                if phase == 0 {
                    presses += 1;
                }
                let start = (tick - phase).wrapping_mul(160);
                let end = phase >= 5;
                let d = (phase.min(4) + 1) * 160;
                let code = ((tick / PRESS_EVERY) % 10) as u8;
                let ev = [code, (u8::from(end) << 7) | 10, (d >> 8) as u8, d as u8];
                frame(call, seq, start, 101, &ev)
            } else {
                frame(call, seq, ts, 0, &audio)
            };
            let usec = u64::from(tick) * 20_000 + u64::from(call) * 100;
            out.write_all(&((usec / 1_000_000) as u32).to_le_bytes())?;
            out.write_all(&((usec % 1_000_000) as u32).to_le_bytes())?;
            out.write_all(&(data.len() as u32).to_le_bytes())?;
            out.write_all(&(data.len() as u32).to_le_bytes())?;
            out.write_all(&data)?;
            written += 16 + data.len() as u64;
            packets += 1;
        }
        tick += 1;
    }
    out.flush()?;
    Ok((packets, presses))
}

fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn main() {
    let mib: u64 = std::env::var("TONEGATE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tonegate-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("large-{mib}mib.pcap"));
    let t = Instant::now();
    let (packets, presses) = generate(&path, mib << 20).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "generated {} ({:.0} MB, {packets} packets, {presses} key presses) in {:.1} s",
        path.display(),
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let cold = drop_caches();
    let cache = if cold {
        "cold cache"
    } else {
        "warm cache (cannot drop caches)"
    };
    let t = Instant::now();
    let mut f = File::open(&path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let read_s = t.elapsed().as_secs_f64();
    println!(
        "disk read ({cache}): {:.2} s, {:.0} MB/s",
        read_s,
        read as f64 / 1e6 / read_s
    );

    // The device itself, bypassing the page cache (a virtual disk may still be cached by its
    // host; that is why both figures are printed).
    if let Ok(out) = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["of=/dev/null", "bs=4M", "iflag=direct"])
        .output()
    {
        let report = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = report.lines().last().filter(|_| out.status.success()) {
            println!("disk read (O_DIRECT, dd): {line}");
        }
    }

    let _ = drop_caches();
    let replay = |label: &str, extra: &[&str]| {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_tonegate"))
            .args(["replay", "--format", "json"])
            .args(extra)
            .arg(&path)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(out.status.success(), "replay failed");
        let found = out
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.windows(6).any(|w| w == b"\"key\":"))
            .count() as u64;
        println!(
            "tonegate replay ({label}): {:.2} s, {:.0} MB/s, {:.2} M packets/s, {found} key presses",
            secs,
            size as f64 / 1e6 / secs,
            packets as f64 / 1e6 / secs
        );
        assert_eq!(found, presses, "replay found a different number of presses");
        secs
    };
    let replay_s = replay(
        &format!("RFC 4733 only (--no-inband), {cache}"),
        &["--no-inband"],
    );
    replay(
        "RFC 4733 only (--no-inband), warm cache: CPU bound",
        &["--no-inband"],
    );
    let _ = drop_caches();
    replay(
        &format!("RFC 4733 + in-band on the PCMU audio (default), {cache}"),
        &[],
    );
    replay("RFC 4733 + in-band (default), warm cache: CPU bound", &[]);
    println!(
        "RFC 4733 replay / disk read time: {:.2} ({})",
        replay_s / read_s,
        if replay_s <= read_s {
            "replay keeps up with the disk"
        } else {
            "replay is slower than the disk"
        }
    );
}
