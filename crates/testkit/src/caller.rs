//! A caller's phone on a real UDP socket: RTP to the gateway, paced, with key presses as
//! RFC 4733 telephone-events, in-band tones, or both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::net::UdpSocket;
use tonegate_media::g711::Law;
use tonegate_media::Key;

use crate::phone::press_event;
use crate::{rtp, tone};

/// A caller's phone sending RTP: PCMU every 20 ms and RFC 4733 telephone-events on PT 101.
/// `pace` is the wall time between packets (20 ms is real time; less replays faster, which
/// the gateway's media-time clock does not mind).
pub struct Caller {
    socket: Arc<UdpSocket>,
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
        Ok(Caller::on(Arc::new(socket), to, pace))
    }

    /// A caller sending from `socket` (which the test may also read: a phone that receives the
    /// other side's audio on the socket it sends from, as symmetric RTP has it).
    pub fn on(socket: Arc<UdpSocket>, to: SocketAddr, pace: Duration) -> Caller {
        Caller {
            socket,
            to,
            seq: 1,
            ts: 160_000,
            ssrc: 0x7e5c_da55,
            pace,
        }
    }

    /// The caller's RTP SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    async fn send(&mut self, pt: u8, ts: u32, payload: &[u8]) -> anyhow::Result<()> {
        let p = rtp::packet(pt, false, self.seq, ts, self.ssrc, payload);
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
        self.press_events(keys, false).await
    }

    /// Presses `keys` as in-band tones only (no telephone-events): 100 ms of the key's two
    /// tones at -10 dBm0 each in the PCMU audio, then 100 ms of silence.
    pub async fn press_inband(&mut self, keys: &str) -> anyhow::Result<()> {
        for c in keys.chars() {
            let key = keypad(c)?;
            for _ in 0..5 {
                let payload = tone20(key, self.ts);
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
        self.press_events(keys, true).await
    }

    /// Each key as a 100 ms press of telephone-events ([`press_event`]), with the key's tones
    /// in the audio beside the five updates when `tones`; then 100 ms of silence.
    async fn press_events(&mut self, keys: &str, tones: bool) -> anyhow::Result<()> {
        for c in keys.chars() {
            let key = keypad(c)?;
            let start = self.ts;
            for i in 1..=8u16 {
                if tones && i <= 5 {
                    let payload = tone20(key, self.ts);
                    self.send(0, self.ts, &payload).await?;
                }
                let event = press_event(key.event_code(), i);
                self.send(101, start, &event.to_bytes()).await?;
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

fn keypad(c: char) -> anyhow::Result<Key> {
    match Key::from_char(c) {
        Some(key) => Ok(key),
        None => bail!("`{c}` is not a keypad key"),
    }
}

/// 20 ms of a key's two tones at -10 dBm0 each, mu-law, starting at sample `ts` (the phase
/// runs on with the stream's timestamps).
fn tone20(key: Key, ts: u32) -> Vec<u8> {
    tone::dtmf_from(key, -10.0, u64::from(ts), 160)
        .into_iter()
        .map(|s| Law::Mu.encode(s))
        .collect()
}
