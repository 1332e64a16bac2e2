//! `tonegate demo`, and the pieces end-to-end tests share: stand-ins for the customer's start,
//! success and failure endpoints, a simulated caller that sends real RTP with RFC 4733 key
//! presses over UDP, and an agent-side client that drives a session over the HTTP API and its
//! event stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::serve::{Gateway, Running, ServeConfig};

/// What the stand-in customer endpoints received, in order: (path, body).
pub type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// Starts stand-ins for the customer's endpoints on 127.0.0.1: `/start` answers `start` (or
/// `status` when it is not 200), `/success` and `/failure` record what they receive.
pub async fn customer_endpoints(
    start: Value,
    status: u16,
) -> anyhow::Result<(SocketAddr, Received)> {
    let received: Received = Arc::default();
    let state = (received.clone(), start, status);
    let app = Router::new()
        .route(
            "/start",
            post(
                |State((r, start, status)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                    r.lock().unwrap().push(("/start".into(), body));
                    (axum::http::StatusCode::from_u16(status).unwrap(), Json(start))
                },
            ),
        )
        .route(
            "/success",
            post(|State((r, _, _)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push(("/success".into(), body));
                Json(json!({"ok": true}))
            }),
        )
        .route(
            "/failure",
            post(|State((r, _, _)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push(("/failure".into(), body));
                Json(json!({"ok": true}))
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, received))
}

/// A function file whose connections point at the stand-ins on `customer`.
pub fn demo_function(customer: SocketAddr) -> String {
    format!(
        "name: collect_payment
purpose: Collects a card payment for the caller's outstanding order once they agree to pay.
set_variables:
  order_id: '{{{{ vars.get(\"order_id\", \"10482\") }}}}'
  email: '{{{{ refs.email }}}}'
connections:
  start:
    url: http://{customer}/start
    timeout_ms: 2000
  success:
    url: http://{customer}/success
  failure:
    url: http://{customer}/failure
limits:
  inter_digit_timeout_seconds: 3
  first_key_timeout_seconds: 8
"
    )
}

/// A gateway configuration on 127.0.0.1 (any free port) whose one function is
/// [`demo_function`] for the stand-ins on `customer`, written into `dir` (which also holds the
/// database), with one telephony and one agent token.
pub fn local_config(
    dir: &std::path::Path,
    customer: SocketAddr,
    telephony_token: &str,
    agent_token: &str,
) -> std::io::Result<ServeConfig> {
    std::fs::create_dir_all(dir)?;
    let function = dir.join("collect_payment.yaml");
    std::fs::write(&function, demo_function(customer))?;
    Ok(ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        telephony_tokens: vec![telephony_token.into()],
        agent_tokens: vec![agent_token.into()],
        functions: vec![function],
        data_dir: dir.join("data"),
        ..ServeConfig::default()
    })
}

/// A caller's phone sending RTP: PCMU every 20 ms and RFC 4733 telephone-events on PT 101.
/// `pace` is the wall time between packets (20 ms is real time; less replays faster, which
/// the gateway's media-time clock does not mind).
pub struct Caller {
    socket: UdpSocket,
    to: SocketAddr,
    seq: u16,
    ts: u32,
    ssrc: u32,
    pace: Duration,
}

impl Caller {
    /// A caller sending to the gateway's RTP address `to`.
    pub async fn new(to: SocketAddr, pace: Duration) -> anyhow::Result<Caller> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        Ok(Caller {
            socket,
            to,
            seq: 1,
            ts: 160_000,
            ssrc: 0x7e5c_da55,
            pace,
        })
    }

    async fn send(&mut self, pt: u8, ts: u32, payload: &[u8]) -> anyhow::Result<()> {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.extend_from_slice(&[0x80, pt]);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.socket.send_to(&p, self.to).await?;
        tokio::time::sleep(self.pace).await;
        Ok(())
    }

    /// `n` packets of silence.
    pub async fn audio(&mut self, n: u32) -> anyhow::Result<()> {
        for _ in 0..n {
            self.send(0, self.ts, &[0xFF; 160]).await?;
            self.ts = self.ts.wrapping_add(160);
        }
        Ok(())
    }

    /// Presses `keys`: 100 ms each (five updates, the end packet three times), 100 ms apart.
    pub async fn press(&mut self, keys: &str) -> anyhow::Result<()> {
        for c in keys.chars() {
            let Some(key) = tonegate_media::Key::from_char(c) else {
                bail!("`{c}` is not a keypad key");
            };
            let start = self.ts;
            for i in 1..=8u16 {
                self.send(101, start, &event_block(key, i)).await?;
                if i <= 5 {
                    self.ts = self.ts.wrapping_add(160);
                }
            }
            self.audio(5).await?;
        }
        Ok(())
    }

    /// Presses `keys` as in-band tones only (no telephone-events): 100 ms of the key's two
    /// tones at -10 dBm0 each in the PCMU audio, then 100 ms of silence.
    pub async fn press_inband(&mut self, keys: &str) -> anyhow::Result<()> {
        for c in keys.chars() {
            let Some(key) = tonegate_media::Key::from_char(c) else {
                bail!("`{c}` is not a keypad key");
            };
            for _ in 0..5 {
                let payload = tone(key, self.ts);
                self.send(0, self.ts, &payload).await?;
                self.ts = self.ts.wrapping_add(160);
            }
            self.audio(5).await?;
        }
        Ok(())
    }

    /// Presses `keys` both ways at once, as many phones do: the tones stay in the audio while
    /// RFC 4733 events are sent for the same key. The gateway must hear one press per key.
    pub async fn press_both(&mut self, keys: &str) -> anyhow::Result<()> {
        for c in keys.chars() {
            let Some(key) = tonegate_media::Key::from_char(c) else {
                bail!("`{c}` is not a keypad key");
            };
            let start = self.ts;
            for i in 1..=8u16 {
                if i <= 5 {
                    let payload = tone(key, self.ts);
                    self.send(0, self.ts, &payload).await?;
                }
                self.send(101, start, &event_block(key, i)).await?;
                if i <= 5 {
                    self.ts = self.ts.wrapping_add(160);
                }
            }
            self.audio(5).await?;
        }
        Ok(())
    }

    /// Sends garbage to the RTP port.
    pub async fn garbage(&mut self) -> anyhow::Result<()> {
        self.socket.send_to(b"not RTP at all", self.to).await?;
        Ok(())
    }
}

/// Packet `i` (1-8) of a 100 ms press: five updates 20 ms apart, then the end packet three
/// times (RFC 4733 §2.5.1.4), volume -10 dBm0.
fn event_block(key: tonegate_media::Key, i: u16) -> [u8; 4] {
    let end = i > 5;
    let d = i.min(5) * 160;
    [
        key.event_code(),
        (u8::from(end) << 7) | 10,
        (d >> 8) as u8,
        d as u8,
    ]
}

/// 20 ms of a key's two tones at -10 dBm0 each, mu-law, starting at sample `ts`.
fn tone(key: tonegate_media::Key, ts: u32) -> Vec<u8> {
    let (low, high) = dtmf_frequencies(key);
    // -10 dBm0 per tone: amplitude 32767 * 10^((-10 - 3.14) / 20).
    let amplitude = 32767.0
        * 10f64.powf((-10.0 - f64::from(tonegate_media::g711::FULL_SCALE_SINE_DBM0)) / 20.0);
    (0..160u32)
        .map(|i| {
            let t = f64::from(ts.wrapping_add(i)) / 8000.0;
            let v = amplitude
                * ((2.0 * std::f64::consts::PI * low * t).sin()
                    + (2.0 * std::f64::consts::PI * high * t).sin());
            tonegate_media::g711::linear_to_ulaw(v as i16)
        })
        .collect()
}

/// The DTMF tone pair of a key (ITU-T Q.23).
fn dtmf_frequencies(key: tonegate_media::Key) -> (f64, f64) {
    const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    let (row, column) = match key.as_char() {
        c @ '1'..='3' => (0, c as usize - '1' as usize),
        c @ '4'..='6' => (1, c as usize - '4' as usize),
        c @ '7'..='9' => (2, c as usize - '7' as usize),
        '*' => (3, 0),
        '0' => (3, 1),
        '#' => (3, 2),
        c => ((c as usize - 'A' as usize), 3),
    };
    (LOW[row], HIGH[column])
}

/// The agent side of one call, over the HTTP API.
pub struct Agent {
    client: reqwest::Client,
    base: String,
    telephony_token: String,
    agent_token: String,
}

impl Agent {
    /// A client for the gateway at `addr`.
    pub fn new(addr: SocketAddr, telephony_token: &str, agent_token: &str) -> Agent {
        Agent {
            client: reqwest::Client::new(),
            base: format!("http://{addr}"),
            telephony_token: telephony_token.into(),
            agent_token: agent_token.into(),
        }
    }

    /// `POST /v1/calls` with an SDP offer: (call id, RTP address).
    pub async fn create_call(&self) -> anyhow::Result<(String, SocketAddr)> {
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";
        let answer: Value = self
            .client
            .post(format!("{}/v1/calls", self.base))
            .bearer_auth(&self.telephony_token)
            .json(&json!({ "sdp": offer }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = answer["call_id"].as_str().context("call_id")?.to_owned();
        let rtp = answer["rtp"].as_str().context("rtp")?.parse()?;
        Ok((id, rtp))
    }

    /// `DELETE /v1/calls/{id}`.
    pub async fn hang_up(&self, call: &str) -> anyhow::Result<()> {
        self.client
            .delete(format!("{}/v1/calls/{call}", self.base))
            .bearer_auth(&self.telephony_token)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Invokes `collect_payment` on the call: the session reference.
    pub async fn invoke(&self, call: &str) -> anyhow::Result<String> {
        let answer: Value = self
            .client
            .post(format!("{}/v1/calls/{call}/sessions", self.base))
            .bearer_auth(&self.agent_token)
            .json(&json!({
                "function": "collect_payment",
                "vars": {"order_id": "10482"},
                "refs": {"email": "caller@example.com"}
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer["session_reference_id"]
            .as_str()
            .context("reference")?
            .to_owned())
    }

    /// Posts an action; the gateway's answer (status and body).
    pub async fn act(&self, session: &str, action: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}/v1/sessions/{session}/actions", self.base))
            .bearer_auth(&self.agent_token)
            .json(&json!({ "action": action }))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn state(&self, session: &str) -> anyhow::Result<Value> {
        Ok(self
            .client
            .get(format!("{}/v1/sessions/{session}", self.base))
            .bearer_auth(&self.agent_token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// Opens the session's event stream; events arrive on the returned channel as JSON.
    pub async fn events(
        &self,
        session: &str,
    ) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Value>> {
        let response = self
            .client
            .get(format!("{}/v1/sessions/{session}/events", self.base))
            .bearer_auth(&self.agent_token)
            .send()
            .await?
            .error_for_status()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    for line in frame.lines() {
                        if let Some(data) = line.strip_prefix("data:") {
                            if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                                if tx.send(v).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// Waits for the next event of `kind` (`say`, `masked_summary`, `outcome`, ...), printing
/// every event on the way when `print` is set; fails after `limit`.
pub async fn wait_for(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
    kind: &str,
    print: bool,
    limit: Duration,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .with_context(|| format!("no `{kind}` event within {limit:?}"))?
            .with_context(|| format!("the event stream ended before a `{kind}` event"))?;
        if print {
            print_event(&event);
        }
        if event["type"] == kind {
            return Ok(event);
        }
    }
}

fn print_event(event: &Value) {
    match event["type"].as_str() {
        Some("say") => println!(
            "agent reads  [{}] {}",
            event["message"].as_str().unwrap_or(""),
            event["text"].as_str().unwrap_or("")
        ),
        Some("state_changed") => println!(
            "state        {} -> {}",
            event["from"].as_str().unwrap_or(""),
            event["to"].as_str().unwrap_or("")
        ),
        Some("field_started") => println!(
            "field        {} (attempt {})",
            event["field"].as_str().unwrap_or(""),
            event["attempt"]
        ),
        Some("field_progress") => {}
        Some("field_completed") => println!(
            "completed    {}{}",
            event["field"].as_str().unwrap_or(""),
            event["brand"]
                .as_str()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default()
        ),
        Some("field_rejected") => println!(
            "rejected     {} {} ({} retries left)",
            event["field"].as_str().unwrap_or(""),
            event["error"].as_str().unwrap_or(""),
            event["retries_left"]
        ),
        Some("masked_summary") => println!("summary      {}", event["card"]),
        Some("outcome") => println!("outcome      {event}"),
        _ => println!("event        {event}"),
    }
}

/// Runs the demo: gateway, stand-ins, a caller paying with `card` (the sandbox's test cards
/// decide the outcome), printing what the agent side sees and what the endpoints receive.
pub async fn run(card: &str, pace: Duration, inband: bool) -> anyhow::Result<()> {
    let (customer, received) = customer_endpoints(
        json!({
            "amount": 4200, "currency": "USD", "description": "Order #10482",
            "processor_parameters": {"invoice_id": "INV-10482", "is_postal_code_required": true}
        }),
        200,
    )
    .await?;
    let dir = std::env::temp_dir().join(format!("tonegate-demo-{}", std::process::id()));
    let config = local_config(&dir, customer, "demo-telephony", "demo-agent")?;
    let running: Running = Gateway::start(config, None).await?;
    println!(
        "tonegate demo: gateway on http://{}, customer endpoints on http://{customer}",
        running.addr
    );
    let agent = Agent::new(running.addr, "demo-telephony", "demo-agent");
    let (call, rtp) = agent.create_call().await?;
    println!("call         {call}: caller's RTP goes to {rtp}");
    let mut caller = Caller::new(rtp, pace).await?;
    caller.audio(10).await?;
    let session = agent.invoke(&call).await?;
    println!("session      {session}");
    let mut events = agent.events(&session).await?;
    let limit = Duration::from_secs(30);
    wait_for(&mut events, "say", true, limit).await?; // disclaimer
    wait_for(&mut events, "say", true, limit).await?; // amount
    println!("caller       \"yes\"  -> agent confirms the amount");
    agent.act(&session, "confirm_amount").await?;
    let expiry = "1230";
    let cvc = if card.starts_with("34") || card.starts_with("37") {
        "1234"
    } else {
        "123"
    };
    let keys = format!("{card}#{expiry}{cvc}94107#");
    if inband {
        println!(
            "caller       keys {} digits as in-band tones in the audio (no RFC 4733)",
            keys.len()
        );
        caller.press_inband(&keys).await?;
    } else {
        println!(
            "caller       keys {} digits as RFC 4733 telephone-events",
            keys.len()
        );
        caller.press(&keys).await?;
    }
    wait_for(&mut events, "masked_summary", true, limit).await?;
    wait_for(&mut events, "say", true, limit).await?;
    println!("caller       \"yes\"  -> agent confirms the card");
    agent.act(&session, "confirm_card").await?;
    let outcome = wait_for(&mut events, "outcome", true, limit).await?;
    caller.audio(5).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (path, body) in received.lock().unwrap().iter() {
        println!("endpoint     {path} received {body}");
    }
    agent.hang_up(&call).await?;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome["state"] != "succeeded" {
        println!(
            "tonegate demo: the payment did not succeed ({})",
            outcome["failed_reason"]
        );
    }
    Ok(())
}
