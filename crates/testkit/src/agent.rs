//! The agent side of a call over the gateway's HTTP API: create and hang up calls (with the
//! telephony token), invoke a function, act, read state and the Server-Sent Events stream
//! (with the agent token); and [`wait_for`], which prints what the agent sees.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::{json, Value};

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

    /// `POST /v1/calls` in relay mode, forwarding to `relay_to`, with `extra` fields merged
    /// into the body (`{"mask_whole_call": true}`, or `{}`): (call id, RTP address).
    pub async fn create_relay_call(
        &self,
        relay_to: SocketAddr,
        extra: Value,
    ) -> anyhow::Result<(String, SocketAddr)> {
        let mut body = json!({"mode": "relay", "relay_to": relay_to.to_string()});
        for (k, v) in extra.as_object().context("extra fields are an object")? {
            body[k] = v.clone();
        }
        let answer: Value = self
            .client
            .post(format!("{}/v1/calls", self.base))
            .bearer_auth(&self.telephony_token)
            .json(&body)
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

    /// `GET /v1/calls/by-sip-call-id/{sip_call_id}` (the Call-ID percent-encoded): the
    /// gateway's status and answer.
    pub async fn call_by_sip_call_id(&self, sip_call_id: &str) -> anyhow::Result<(u16, Value)> {
        let mut encoded = String::new();
        for b in sip_call_id.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let r = self
            .client
            .get(format!("{}/v1/calls/by-sip-call-id/{encoded}", self.base))
            .bearer_auth(&self.agent_token)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
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

/// Prints one agent event as `tonegate demo` shows it.
pub fn print_event(event: &Value) {
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
