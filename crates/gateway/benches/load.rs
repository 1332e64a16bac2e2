//! Load: N concurrent calls, each sending real RTP at 50 packets/s with RFC 4733 key presses,
//! against the gateway on 127.0.0.1. Not a timed test: run it with
//! `cargo bench -p tonegate --bench load` (figures in docs/benchmarks.md).
//!
//! Two processes (the binary re-executes itself):
//!
//! - the **gateway process** (this one): `Gateway::start` with the sandbox processor, a
//!   stand-in customer endpoint and the durable outbox in a temporary data dir. It samples its
//!   own resident memory and CPU time, and at the end checks, per session, that the success
//!   webhook arrived with the card's last four.
//! - the **caller process** (`TONEGATE_LOAD_ROLE=callers`): the telephony side, the callers and
//!   the agents. It creates every call with `POST /v1/calls`, invokes `collect_payment`, opens
//!   the session's Server-Sent Events stream, confirms the amount, and then one sender thread
//!   paces every caller at one packet each 20 ms of real time (PCMU silence, and for each key 5
//!   telephone-event updates, 3 end packets and 5 packets of silence: 260 ms a key). Each
//!   payment is a random valid Visa number and `#`, the expiry, a CVC, a postal code and `#`:
//!   30 key presses. The agent then confirms the card and waits for the outcome.
//!
//! Separate processes keep the gateway's memory and CPU figures its own; both still share the
//! machine's cores, so the latency is measured with the load generator competing for them.
//!
//! Exactly-once: every press must produce exactly one event on the session's SSE stream, in
//! order (a digit: `field_progress` with the next count for its field; `#`: `field_completed`
//! of the card number or the postal code), no `field_rejected`, a `masked_summary` with the
//! card's last four, a `succeeded` outcome, and a success webhook with the same last four.
//! A lost press leaves a count missing; a doubled one adds a count or shifts the fields.
//!
//! Latency: from the moment the caller sends a press's first end packet (the packet that ends
//! the press; the two retransmissions follow 20 and 40 ms later) to the moment that press's
//! event arrives on the agent's SSE stream, both read from the caller process's monotonic
//! clock. It covers UDP, the call task, decoding, the collector, the session, the broadcast,
//! axum's SSE response and the agent's TCP read.
//!
//! Settings (environment): `TONEGATE_LOAD_CALLS` (default 1000), `TONEGATE_LOAD_PAYMENTS`
//! payments per call, one after the other (default 2: 60 key presses a call),
//! `TONEGATE_LOAD_DEBUG=1` to also print every press slower than 10 ms, each session's end
//! and the gateway's CPU and thread count every 100 ms (on stderr).
//!
//! Each process holds two to three file descriptors a call (UDP socket, SSE connection,
//! pooled HTTP connections; the gateway 7,000 at 3,000 calls): `ulimit -n` must allow that.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_media::Key;
use tonegate_testkit::standin::{customer_endpoints, demo_function};
use tonegate_testkit::{cards, rtp};

const ROLE: &str = "TONEGATE_LOAD_ROLE";
const GATEWAY: &str = "TONEGATE_LOAD_GATEWAY";
const TELEPHONY_TOKEN: &str = "load-telephony";
const AGENT_TOKEN: &str = "load-agent";
/// One packet per call every 20 ms: 50 packets/s.
const PACKET_MS: u64 = 20;
/// Key presses in one payment: 16 card digits and `#`, 4 expiry, 3 CVC, 5 postal and `#`.
const PRESSES: usize = 30;
const LIMIT: Duration = Duration::from_secs(30);

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().with_context(|| format!("{name}=`{v}`")),
        _ => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let calls = env_usize("TONEGATE_LOAD_CALLS", 1000)?;
    let payments = env_usize("TONEGATE_LOAD_PAYMENTS", 2)?.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var(ROLE).as_deref() == Ok("callers") {
        let addr: SocketAddr = std::env::var(GATEWAY)
            .context("the caller process needs TONEGATE_LOAD_GATEWAY")?
            .parse()?;
        runtime.block_on(callers_main(addr, calls, payments))
    } else {
        runtime.block_on(gateway_main(calls, payments))
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process.

/// Resident memory of a process, in bytes (`VmRSS`), and its peak (`VmHWM`).
fn memory(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process, in seconds.
fn cpu_seconds(pid: &str, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / ticks_per_second
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The kernel's UDP counters (`/proc/net/snmp`, system-wide).
fn udp_counters() -> HashMap<String, u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let lines: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let mut counters = HashMap::new();
    if let [names, values, ..] = lines.as_slice() {
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            counters.insert(n.to_owned(), v.parse().unwrap_or(0));
        }
    }
    counters
}

struct Sample {
    at: Instant,
    rss: u64,
    cpu: f64,
    child_rss: u64,
    child_cpu: f64,
}

async fn gateway_main(calls: usize, payments: usize) -> anyhow::Result<()> {
    let ticks = clock_ticks();
    let (customer, received) = customer_endpoints(
        json!({
            "amount": 4200, "currency": "USD", "description": "Order #10482",
            "processor_parameters": {"invoice_id": "INV-10482", "is_postal_code_required": true}
        }),
        200,
    )
    .await?;
    let dir = std::env::temp_dir().join(format!("tonegate-load-{}", std::process::id()));
    let config = ServeConfig {
        shutdown_deadline_seconds: 1.0,
        ..ServeConfig::local(&dir, &demo_function(customer), TELEPHONY_TOKEN, AGENT_TOKEN)?
    };
    let running = Gateway::start(config, None).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_base, _) = memory("self");
    let udp_before = udp_counters();
    println!(
        "load: {calls} calls x {payments} payments ({} key presses), gateway on {}, {} cores",
        calls * payments * PRESSES,
        running.addr,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, "callers")
        .env(GATEWAY, running.addr.to_string())
        .env("TONEGATE_LOAD_CALLS", calls.to_string())
        .env("TONEGATE_LOAD_PAYMENTS", payments.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the caller process")?;
    let child_pid = child.id().to_string();
    let stdout = child.stdout.take().context("caller stdout")?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let sample = || {
        let (rss, _) = memory("self");
        let (child_rss, _) = memory(&child_pid);
        Sample {
            at: Instant::now(),
            rss,
            cpu: cpu_seconds("self", ticks),
            child_rss,
            child_cpu: cpu_seconds(&child_pid, ticks),
        }
    };
    let started = sample();
    let mut up: Option<Sample> = None;
    let mut done: Option<Sample> = None;
    let mut result: Option<Value> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let debug = std::env::var_os("TONEGATE_LOAD_DEBUG").is_some();
    let mut last = sample();
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                if line == "up" {
                    up = Some(sample());
                    println!("load: all {calls} calls up, amounts being confirmed, key presses starting");
                } else if line == "done" {
                    done = Some(sample());
                } else if let Some(json) = line.strip_prefix("result ") {
                    result = Some(serde_json::from_str(json).context("the caller's result")?);
                } else {
                    println!("{line}");
                }
            }
            _ = poll.tick(), if debug => {
                let now = sample();
                let threads = std::fs::read_to_string("/proc/self/status")
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.starts_with("Threads:"))
                    .unwrap_or_default()
                    .to_owned();
                let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                eprintln!(
                    "cpu at {:.1} s: gateway {:.0} %, callers {:.0} %, {threads}, {fds} fds",
                    now.at.duration_since(started.at).as_secs_f64(),
                    100.0 * (now.cpu - last.cpu) / now.at.duration_since(last.at).as_secs_f64(),
                    100.0 * (now.child_cpu - last.child_cpu)
                        / now.at.duration_since(last.at).as_secs_f64(),
                );
                last = now;
            }
        }
    }
    let status = child.wait()?;
    let (Some(up), Some(done), Some(result)) = (up, done, result) else {
        bail!("the caller process ended early ({status})");
    };

    // Gateway side: one success webhook per session, with the card's last four.
    let sessions: HashMap<String, String> = result["sessions"]
        .as_array()
        .context("sessions")?
        .iter()
        .filter_map(|s| Some((s[0].as_str()?.to_owned(), s[1].as_str()?.to_owned())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let webhooks = loop {
        let got: Vec<(String, String)> = received
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(path, _)| path == "/success")
            .filter_map(|(_, body)| {
                Some((
                    body["session_reference_id"].as_str()?.to_owned(),
                    body["card"]["last4"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if got.len() >= sessions.len() || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut webhook_mismatch = 0;
    for (reference, last4) in &webhooks {
        *seen.entry(reference).or_default() += 1;
        if sessions.get(reference) != Some(last4) {
            webhook_mismatch += 1;
        }
    }
    let webhook_missing = sessions
        .keys()
        .filter(|r| !seen.contains_key(r.as_str()))
        .count();
    let webhook_repeated: usize = seen.values().map(|n| n - 1).sum();
    let udp_after = udp_counters();
    let (_, peak_rss) = memory("self");
    let udp = |name: &str| {
        udp_after.get(name).copied().unwrap_or(0) - udp_before.get(name).copied().unwrap_or(0)
    };
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    // The summary.
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let window = done.at.duration_since(up.at).as_secs_f64();
    let whole = done.at.duration_since(started.at).as_secs_f64();
    let lat = &result["latency_ms"];
    let sender = &result["sender"];
    let presses_sent = result["presses_sent"].as_u64().unwrap_or(0);
    let presses_ok = result["presses_exactly_once"].as_u64().unwrap_or(0);
    let lost = result["lost"].as_u64().unwrap_or(0);
    let doubled = result["doubled"].as_u64().unwrap_or(0);
    let failed = result["sessions_failed"].as_u64().unwrap_or(0);
    let p99 = lat["p99"].as_f64().unwrap_or(f64::INFINITY);
    let per_call_up = (up.rss.saturating_sub(rss_base)) as f64 / calls as f64;
    let per_call_peak = (peak_rss.saturating_sub(rss_base)) as f64 / calls as f64;
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| calls, each 50 packets/s of RTP | {calls} |");
    println!(
        "| payments with every press exact | {} ({payments} a call; calls with a failure: {}) |",
        sessions.len(),
        failed
    );
    println!("| key presses sent / reported exactly once | {presses_sent} / {presses_ok} |");
    println!("| lost / doubled key presses | {lost} / {doubled} |");
    println!(
        "| success webhooks: missing / repeated / wrong last four | {webhook_missing} / {webhook_repeated} / {webhook_mismatch} |"
    );
    println!(
        "| press latency, first end packet sent -> SSE event read (ms) | p50 {:.2}, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2} ({} presses) |",
        lat["p50"].as_f64().unwrap_or(0.0),
        lat["p90"].as_f64().unwrap_or(0.0),
        p99,
        lat["p999"].as_f64().unwrap_or(0.0),
        lat["max"].as_f64().unwrap_or(0.0),
        lat["count"]
    );
    println!(
        "| packets sent by the callers / UDP datagrams received (kernel) | {} / {} |",
        sender["packets"],
        udp("InDatagrams")
    );
    println!(
        "| UDP receive errors / buffer overflows (kernel) | {} / {} |",
        udp("InErrors"),
        udp("RcvbufErrors")
    );
    println!(
        "| sender lateness behind its 1 ms schedule (ms) | p99 {:.2}, max {:.2} |",
        sender["late_p99_ms"].as_f64().unwrap_or(0.0),
        sender["late_max_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| gateway RSS: idle / all calls up / peak | {:.1} / {:.1} / {:.1} MiB |",
        mib(rss_base),
        mib(up.rss),
        mib(peak_rss)
    );
    println!(
        "| gateway memory per call (RSS, all calls up / peak) | {:.1} / {:.1} KiB |",
        per_call_up / 1024.0,
        per_call_peak / 1024.0
    );
    println!(
        "| gateway CPU, key-press phase ({window:.1} s) | {:.0} % of one core |",
        100.0 * (done.cpu - up.cpu) / window
    );
    println!(
        "| caller process CPU, key-press phase | {:.0} % of one core (RSS {:.0} MiB) |",
        100.0 * (done.child_cpu - up.child_cpu) / window,
        mib(done.child_rss)
    );
    println!(
        "| gateway CPU, whole run ({whole:.1} s, with call setup) | {:.0} % of one core |",
        100.0 * (done.cpu - started.cpu) / whole
    );
    println!();
    let exact = lost == 0 && doubled == 0 && failed == 0 && presses_ok == presses_sent;
    let webhooks_ok = webhook_missing == 0 && webhook_repeated == 0 && webhook_mismatch == 0;
    println!(
        "target: zero lost or doubled key presses: {}",
        if exact && webhooks_ok {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "target: p99 under 20 ms: {} ({p99:.2} ms)",
        if p99 < 20.0 { "met" } else { "NOT met" }
    );
    if let Some(failures) = result["failures"].as_array() {
        for f in failures {
            println!("failure: {}", f.as_str().unwrap_or_default());
        }
    }
    if !status.success() {
        bail!("the caller process failed ({status})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The caller process: one sender thread pacing every caller's RTP; one task per call for the
// telephony and agent sides.

enum SenderCommand {
    /// A new caller: its socket and the gateway's RTP address for the call.
    Add(usize, StdUdpSocket, SocketAddr),
    /// Press these keys, after whatever the caller is pressing now.
    Press(usize, String),
}

struct Line {
    socket: StdUdpSocket,
    to: SocketAddr,
    seq: u16,
    ts: u32,
    ssrc: u32,
    keys: VecDeque<Key>,
    key: Option<Key>,
    /// 0: silence; 1-8: the key's event packets (6-8 are the end packets); 9-13: silence.
    step: u8,
    press_ts: u32,
    /// When each press's first end packet was sent.
    ends: Vec<Instant>,
    packets: u64,
}

impl Line {
    fn send_next(&mut self, buf: &mut Vec<u8>) {
        if self.step == 0 {
            if let Some(key) = self.keys.pop_front() {
                self.key = Some(key);
                self.step = 1;
                self.press_ts = self.ts;
            }
        }
        buf.clear();
        match (self.step, self.key) {
            (1..=8, Some(key)) => {
                let i = u16::from(self.step);
                let end = i > 5;
                let duration = i.min(5) * 160;
                let event = [
                    key.event_code(),
                    (u8::from(end) << 7) | 10,
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                rtp::write(buf, 101, i == 1, self.seq, self.press_ts, self.ssrc, &event);
                if i == 6 {
                    self.ends.push(Instant::now());
                }
                self.step += 1;
            }
            _ => {
                rtp::write(buf, 0, false, self.seq, self.ts, self.ssrc, &[0xFF; 160]);
                if self.step > 0 {
                    self.step = if self.step >= 13 { 0 } else { self.step + 1 };
                }
            }
        }
        // Every packet is 20 ms of media: the next packet's timestamp moves on (the end
        // packets repeat the event's timestamp; the audio after them resumes at real time).
        self.ts = self.ts.wrapping_add(160);
        self.seq = self.seq.wrapping_add(1);
        self.packets += 1;
        let _ = self.socket.send_to(buf, self.to);
    }
}

struct SenderReport {
    start: Instant,
    ends: Vec<Vec<Instant>>,
    packets: u64,
    late_p99_ms: f64,
    late_max_ms: f64,
}

/// One thread sends every caller's packets: the callers are spread over the 20 ms period by a
/// random phase, 1 ms slots, each caller sending one packet per period.
fn sender(
    calls: usize,
    commands: std_mpsc::Receiver<SenderCommand>,
    stop: Arc<AtomicBool>,
) -> SenderReport {
    let mut lines: Vec<Option<Line>> = (0..calls).map(|_| None).collect();
    let mut slots: Vec<Vec<usize>> = vec![Vec::new(); PACKET_MS as usize];
    let mut late_us: Vec<u32> = Vec::new();
    let mut buf = Vec::with_capacity(200);
    let start = Instant::now();
    let mut tick: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_millis(tick);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        late_us.push(Instant::now().saturating_duration_since(due).as_micros() as u32);
        while let Ok(command) = commands.try_recv() {
            match command {
                SenderCommand::Add(i, socket, to) => {
                    lines[i] = Some(Line {
                        socket,
                        to,
                        seq: rand::random(),
                        ts: rand::random(),
                        ssrc: rand::random(),
                        keys: VecDeque::new(),
                        key: None,
                        step: 0,
                        press_ts: 0,
                        ends: Vec::new(),
                        packets: 0,
                    });
                    slots[rand::random_range(0..PACKET_MS as usize)].push(i);
                }
                SenderCommand::Press(i, keys) => {
                    if let Some(line) = &mut lines[i] {
                        line.keys.extend(keys.chars().filter_map(Key::from_char));
                    }
                }
            }
        }
        for &i in &slots[(tick % PACKET_MS) as usize] {
            if let Some(line) = &mut lines[i] {
                line.send_next(&mut buf);
            }
        }
        tick += 1;
    }
    late_us.sort_unstable();
    let pick = |q: f64| {
        late_us
            .get(((late_us.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    SenderReport {
        start,
        packets: lines.iter().flatten().map(|l| l.packets).sum(),
        ends: lines
            .into_iter()
            .map(|l| l.map(|l| l.ends).unwrap_or_default())
            .collect(),
        late_p99_ms: pick(0.99),
        late_max_ms: pick(1.0),
    }
}

type Chunks = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// A session's event stream, each event stamped with when its bytes were read.
struct Events {
    chunks: Chunks,
    buffer: String,
    pending: VecDeque<(Instant, Value)>,
}

impl Events {
    async fn open(client: &reqwest::Client, base: &str, session: &str) -> anyhow::Result<Events> {
        let response = client
            .get(format!("{base}/v1/sessions/{session}/events"))
            .bearer_auth(AGENT_TOKEN)
            .send()
            .await?
            .error_for_status()?;
        Ok(Events {
            chunks: Box::pin(response.bytes_stream().map(|c| c.map(|b| b.to_vec()))),
            buffer: String::new(),
            pending: VecDeque::new(),
        })
    }

    async fn next(&mut self) -> anyhow::Result<(Instant, Value)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let chunk = tokio::time::timeout(LIMIT, self.chunks.next())
                .await
                .context("no event for 30 s")?
                .context("the event stream ended")??;
            let at = Instant::now();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                for line in frame.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                            self.pending.push_back((at, v));
                        }
                    }
                }
            }
        }
    }

    /// The next event of `kind`, skipping others.
    async fn until(&mut self, kind: &str) -> anyhow::Result<Value> {
        loop {
            let (_, event) = self.next().await?;
            if event["type"] == kind {
                return Ok(event);
            }
            if event["type"] == "outcome" {
                bail!("waiting for `{kind}`, the session ended: {event}");
            }
        }
    }
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    commands: std_mpsc::Sender<SenderCommand>,
    setup: tokio::sync::Semaphore,
    barrier: tokio::sync::Barrier,
    payments: usize,
}

impl Ctx {
    fn command(&self, command: SenderCommand) {
        let _ = self.commands.send(command);
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn invoke(&self, call: &str) -> anyhow::Result<(String, Events)> {
        let answer = self
            .post(
                &format!("/v1/calls/{call}/sessions"),
                AGENT_TOKEN,
                json!({
                    "function": "collect_payment",
                    "vars": {"order_id": "10482"},
                    "refs": {"email": "caller@example.com"}
                }),
            )
            .await?;
        let session = answer["session_reference_id"]
            .as_str()
            .context("session_reference_id")?
            .to_owned();
        let mut events = Events::open(&self.client, &self.base, &session).await?;
        loop {
            let event = events.until("state_changed").await?;
            if event["to"] == "awaiting_amount_confirmation" {
                break;
            }
        }
        Ok((session, events))
    }

    async fn act(&self, session: &str, action: &str) -> anyhow::Result<()> {
        self.post(
            &format!("/v1/sessions/{session}/actions"),
            AGENT_TOKEN,
            json!({ "action": action }),
        )
        .await
        .map(drop)
    }
}

fn digits(n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect()
}

/// The event each key press must produce, in order.
fn expected_events(card: &str, cvc: &str, postal: &str) -> Vec<String> {
    let mut expected = Vec::new();
    for (field, n, hash) in [
        ("card_number", card.len(), true),
        ("expiration_date", 4, false),
        ("security_code", cvc.len(), false),
        ("postal_code", postal.len(), true),
    ] {
        expected.extend((1..=n).map(|d| format!("field_progress {field} {d}")));
        if hash {
            expected.push(format!("field_completed {field}"));
        }
    }
    expected
}

/// What one call's agent saw.
#[derive(Default)]
struct CallReport {
    /// Per payment: the session, the card's last four, and when each press's event arrived
    /// (all of them, or none when the events did not match the presses).
    payments: Vec<(String, String, Option<Vec<Instant>>)>,
    lost: usize,
    doubled: usize,
    failures: Vec<String>,
    call: Option<String>,
    outcomes: Vec<Instant>,
}

async fn run_call(ctx: Arc<Ctx>, i: usize) -> CallReport {
    let mut report = CallReport::default();
    // Setup, a few calls at a time: the call (its caller starts streaming at once), the
    // first session, up to the amount prompt.
    let setup = async {
        let _permit = ctx.setup.acquire().await?;
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
        let answer = ctx
            .post("/v1/calls", TELEPHONY_TOKEN, json!({ "sdp": offer }))
            .await?;
        let call = answer["call_id"].as_str().context("call_id")?.to_owned();
        let rtp: SocketAddr = answer["rtp"].as_str().context("rtp")?.parse()?;
        let socket = StdUdpSocket::bind("127.0.0.1:0")?;
        ctx.command(SenderCommand::Add(i, socket, rtp));
        let first = ctx.invoke(&call).await?;
        anyhow::Ok((call, first))
    }
    .await;
    // Every call is up and streaming before any key is pressed.
    if ctx.barrier.wait().await.is_leader() {
        println!("up");
        let _ = std::io::stdout().flush();
    }
    let (call, first) = match setup {
        Ok(s) => s,
        Err(e) => {
            report.failures.push(format!("call {i} setup: {e:#}"));
            return report;
        }
    };
    report.call = Some(call.clone());
    let mut next = Some(first);
    for payment in 0..ctx.payments {
        let (session, events) = match next.take() {
            Some(s) => s,
            None => match ctx.invoke(&call).await {
                Ok(s) => s,
                Err(e) => {
                    report
                        .failures
                        .push(format!("call {i} payment {payment} invoke: {e:#}"));
                    return report;
                }
            },
        };
        if let Err(e) = pay(&ctx, i, &session, events, &mut report).await {
            report
                .failures
                .push(format!("call {i} session {session}: {e:#}"));
            return report;
        }
    }
    report
}

async fn pay(
    ctx: &Ctx,
    i: usize,
    session: &str,
    mut events: Events,
    report: &mut CallReport,
) -> anyhow::Result<()> {
    // Spread the agents' confirmations and the callers' first keys over one key's length.
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..260))).await;
    ctx.act(session, "confirm_amount").await?;
    loop {
        let event = events.until("field_started").await?;
        if event["field"] == "card_number" {
            break;
        }
    }
    let card = cards::random_visa();
    let cvc = digits(3);
    let postal = digits(5);
    let expected = expected_events(&card, &cvc, &postal);
    ctx.command(SenderCommand::Press(
        i,
        format!("{card}#1230{cvc}{postal}#"),
    ));
    // Every press's event, until the masked summary.
    let mut seen: Vec<(Instant, String)> = Vec::new();
    let summary = loop {
        let (at, event) = events.next().await?;
        match event["type"].as_str().unwrap_or_default() {
            "field_progress" => seen.push((
                at,
                format!(
                    "field_progress {} {}",
                    event["field"].as_str().unwrap_or_default(),
                    event["digits"]
                ),
            )),
            "field_completed"
                if matches!(event["field"].as_str(), Some("card_number" | "postal_code")) =>
            {
                seen.push((
                    at,
                    format!(
                        "field_completed {}",
                        event["field"].as_str().unwrap_or_default()
                    ),
                ))
            }
            "field_rejected" => seen.push((at, format!("field_rejected {event}"))),
            "masked_summary" => break event,
            "outcome" => bail!("the session ended before the summary: {event}"),
            _ => {}
        }
    };
    let last4 = card[card.len() - 4..].to_owned();
    let names: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    let exact = names == expected;
    if exact {
        report.payments.push((
            session.to_owned(),
            last4.clone(),
            Some(seen.iter().map(|(at, _)| *at).collect()),
        ));
    } else {
        // Multiset difference: what is missing was lost, what is extra was doubled (or is
        // the rejection a doubled key caused).
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for e in &expected {
            *counts.entry(e).or_default() += 1;
        }
        for n in &names {
            *counts.entry(n).or_default() -= 1;
        }
        report.lost += counts.values().filter(|&&c| c > 0).sum::<i64>() as usize;
        report.doubled += counts.values().filter(|&&c| c < 0).map(|c| -c).sum::<i64>() as usize;
        report
            .payments
            .push((session.to_owned(), last4.clone(), None));
        bail!("the events do not match the key presses: {names:?}");
    }
    if summary["card"]["last4"] != last4.as_str() || summary["card"]["brand"] != "visa" {
        bail!("summary {summary} for a card ending {last4}");
    }
    ctx.act(session, "confirm_card").await?;
    let outcome = events.until("outcome").await?;
    report.outcomes.push(Instant::now());
    if outcome["state"] != "succeeded" {
        bail!("outcome {outcome}");
    }
    Ok(())
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

async fn callers_main(addr: SocketAddr, calls: usize, payments: usize) -> anyhow::Result<()> {
    let (commands, receiver) = std_mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let sender_thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("rtp-sender".into())
            .spawn(move || sender(calls, receiver, stop))?
    };
    let ctx = Arc::new(Ctx {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        base: format!("http://{addr}"),
        commands,
        setup: tokio::sync::Semaphore::new(64),
        barrier: tokio::sync::Barrier::new(calls),
        payments,
    });
    let tasks: Vec<_> = (0..calls)
        .map(|i| tokio::spawn(run_call(ctx.clone(), i)))
        .collect();
    let mut reports = Vec::with_capacity(calls);
    for task in tasks {
        reports.push(task.await?);
    }
    println!("done");
    let _ = std::io::stdout().flush();
    stop.store(true, Ordering::Relaxed);
    let sent = sender_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?;
    // Hang up, a few at a time.
    let hang_ups = Arc::new(tokio::sync::Semaphore::new(64));
    let mut ends = Vec::new();
    for call in reports.iter().filter_map(|r| r.call.clone()) {
        let ctx = ctx.clone();
        let hang_ups = hang_ups.clone();
        ends.push(tokio::spawn(async move {
            let _permit = hang_ups.acquire().await;
            let _ = ctx
                .client
                .delete(format!("{}/v1/calls/{call}", ctx.base))
                .bearer_auth(TELEPHONY_TOKEN)
                .send()
                .await;
        }));
    }
    for end in ends {
        let _ = end.await;
    }

    let mut latencies: Vec<f64> = Vec::new();
    let debug = std::env::var_os("TONEGATE_LOAD_DEBUG").is_some();
    let mut slow: Vec<(f64, f64, usize, usize)> = Vec::new();
    let t0 = sent.start;
    let mut presses_exactly_once = 0usize;
    let mut sessions_failed = 0usize;
    let mut sessions = Vec::new();
    let mut failures = Vec::new();
    let (mut lost, mut doubled) = (0, 0);
    for (i, report) in reports.iter().enumerate() {
        lost += report.lost;
        doubled += report.doubled;
        let ends = &sent.ends[i];
        for (p, (session, last4, arrivals)) in report.payments.iter().enumerate() {
            let Some(arrivals) = arrivals else { continue };
            presses_exactly_once += arrivals.len();
            for (k, at) in arrivals.iter().enumerate() {
                if let Some(end) = ends.get(p * PRESSES + k) {
                    let ms = at.saturating_duration_since(*end).as_secs_f64() * 1000.0;
                    latencies.push(ms);
                    if debug && ms > 10.0 {
                        slow.push((ms, end.duration_since(t0).as_secs_f64(), i, k));
                    }
                }
            }
            sessions.push(json!([session, last4]));
        }
        if !report.failures.is_empty() {
            sessions_failed += 1;
        }
        failures.extend(report.failures.iter().cloned());
    }
    let presses_sent: usize = sent.ends.iter().map(Vec::len).sum();
    latencies.sort_by(f64::total_cmp);
    slow.sort_by(|a, b| a.1.total_cmp(&b.1));
    for (ms, at, i, k) in &slow {
        eprintln!("slow: {ms:.1} ms at {at:.3} s, call {i}, press {k}");
    }
    if debug {
        for r in &reports {
            for at in &r.outcomes {
                eprintln!("outcome at {:.3} s", at.duration_since(t0).as_secs_f64());
            }
        }
    }
    let result = json!({
        "presses_sent": presses_sent,
        "presses_exactly_once": presses_exactly_once,
        "lost": lost,
        "doubled": doubled,
        "sessions_failed": sessions_failed,
        "failures": failures.iter().take(10).collect::<Vec<_>>(),
        "sessions": sessions,
        "latency_ms": {
            "count": latencies.len(),
            "p50": quantile(&latencies, 0.5),
            "p90": quantile(&latencies, 0.9),
            "p99": quantile(&latencies, 0.99),
            "p999": quantile(&latencies, 0.999),
            "max": quantile(&latencies, 1.0),
        },
        "sender": {
            "packets": sent.packets,
            "late_p99_ms": sent.late_p99_ms,
            "late_max_ms": sent.late_max_ms,
        },
    });
    println!("result {result}");
    let _ = std::io::stdout().flush();
    if calls * payments * PRESSES != presses_sent || !failures.is_empty() {
        bail!(
            "{} failures, {presses_sent} of {} key presses sent",
            failures.len(),
            calls * payments * PRESSES
        );
    }
    Ok(())
}
