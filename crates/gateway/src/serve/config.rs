//! The gateway's settings: a YAML file, then the environment (`docs/serve.md`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tonegate_pci::ProcessorConfig;

/// The gateway's settings. Every field has a default; `docs/serve.md` lists them with their
/// environment variables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// HTTP listen address (`TONEGATE_LISTEN`), default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Address RTP sockets bind to and SDP answers carry (`TONEGATE_RTP_IP`), default 127.0.0.1.
    pub rtp_ip: IpAddr,
    /// UDP ports calls' RTP sockets take, `FIRST-LAST` (`TONEGATE_RTP_PORTS`); default none:
    /// the OS picks any free port.
    pub rtp_ports: Option<PortRange>,
    /// Bearer tokens of the telephony side (`TONEGATE_TELEPHONY_TOKEN`).
    pub telephony_tokens: Vec<String>,
    /// Bearer tokens of the agent side (`TONEGATE_AGENT_TOKEN`).
    pub agent_tokens: Vec<String>,
    /// Function files (`TONEGATE_FUNCTIONS`, comma-separated); default: the embedded example.
    pub functions: Vec<PathBuf>,
    /// The processor connector; default the sandbox.
    pub processor: ProcessorConfig,
    /// Where the database lives (`TONEGATE_DATA_DIR`), default `./data`.
    pub data_dir: PathBuf,
    /// Seconds without media after which a call is hung up, default 30.
    pub no_media_timeout_seconds: u64,
    /// Largest request body accepted, in bytes, default 65536.
    pub body_limit_bytes: usize,
    /// On SIGTERM, how long active sessions may take to finish, in seconds, default 30.
    pub shutdown_deadline_seconds: f64,
    /// How long a call's sessions stay readable after the call ends, in seconds, default 600.
    pub session_retention_seconds: u64,
    /// Success/failure deliveries: the first retry waits up to this many milliseconds (then
    /// doubling, with full jitter), default 1000.
    pub webhook_backoff_base_ms: u64,
    /// Success/failure deliveries: the longest wait between attempts, in seconds, default 300.
    pub webhook_backoff_cap_seconds: u64,
    /// Success/failure deliveries: retried until this many hours after the session ended,
    /// default 24.
    pub webhook_deadline_hours: f64,
    /// Serve with the sandbox processor on an address other than loopback (default false: the
    /// sandbox approves every valid card it does not know, so a gateway reachable from the
    /// network refuses to start with it unless this says it is meant).
    pub allow_sandbox: bool,
    /// Relay mode: mask key presses for the whole of every call, not only during payment
    /// sessions (default false; a call can ask for it with `mask_whole_call`).
    pub mask_whole_call: bool,
    /// Relay mode: how long masking outlasts a payment session, in milliseconds (default 2000).
    pub mask_hold_over_ms: u64,
    /// Relay mode: what replaces audio that might hold a key tone: `silence` (default),
    /// `noise` (comfort noise at the caller's background level) or `tone` (a neutral 1 kHz).
    pub mask_replacement: MaskReplacement,
    /// UDP address of the ng control protocol (`TONEGATE_NG_LISTEN`), the way Kamailio's and
    /// OpenSIPS's `rtpengine` modules drive a media proxy; default none: off.
    pub ng_listen: Option<SocketAddr>,
    /// ng calls: how long a call may wait for its answer (ringing) without media before it is
    /// dropped, in seconds (default 3600, rtpengine's `offer-timeout`); once answered,
    /// `no_media_timeout_seconds` applies.
    pub ng_offer_timeout_seconds: u64,
    /// ng calls: whose keys are collected and masked, `offerer` (default: the From tag's side,
    /// an inbound call) or `answerer` (an outbound call); per call, the ng key `caller`
    /// (`TONEGATE_NG_CALLER`).
    pub ng_caller: crate::ng::request::CallerSide,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_ports: None,
            telephony_tokens: Vec::new(),
            agent_tokens: Vec::new(),
            functions: Vec::new(),
            processor: ProcessorConfig::default(),
            data_dir: PathBuf::from("data"),
            no_media_timeout_seconds: 30,
            body_limit_bytes: 64 * 1024,
            shutdown_deadline_seconds: 30.0,
            session_retention_seconds: 600,
            webhook_backoff_base_ms: 1000,
            webhook_backoff_cap_seconds: 300,
            webhook_deadline_hours: 24.0,
            allow_sandbox: false,
            mask_whole_call: false,
            mask_hold_over_ms: 2000,
            mask_replacement: MaskReplacement::Silence,
            ng_listen: None,
            ng_offer_timeout_seconds: 3600,
            ng_caller: crate::ng::request::CallerSide::Offerer,
        }
    }
}

/// An inclusive range of UDP ports for calls' RTP sockets (`rtp_ports: 20000-29999`). Calls
/// take its even ports only (RFC 3550 §11: RTP on an even port, RTCP on the odd one above,
/// which firewall rules and SBCs often assume), in turn, skipping ports in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// The even ports of the range, in order.
    pub fn even_ports(&self) -> impl Iterator<Item = u16> {
        let range = *self;
        (0..range.even_count()).filter_map(move |i| range.even_port(i))
    }

    /// How many even ports the range holds.
    pub(super) fn even_count(&self) -> usize {
        let first = u32::from(self.first).next_multiple_of(2);
        (u32::from(self.last) + 1).saturating_sub(first).div_ceil(2) as usize
    }

    /// The `i`th even port of the range.
    pub(super) fn even_port(&self, i: usize) -> Option<u16> {
        let first = u32::from(self.first).next_multiple_of(2);
        u16::try_from(first + 2 * i as u32)
            .ok()
            .filter(|&p| p <= self.last)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let shape = || format!("`{s}`: expected FIRST-LAST, e.g. 20000-29999");
        let (a, b) = s.trim().split_once('-').ok_or_else(shape)?;
        let port = |v: &str| v.trim().parse::<u16>().ok().filter(|&p| p > 0);
        let (Some(first), Some(last)) = (port(a), port(b)) else {
            return Err(format!("{}; ports are 1-65535", shape()));
        };
        let range = PortRange { first, last };
        if first > last {
            return Err(format!("`{s}`: the first port is above the last"));
        }
        if range.even_ports().next().is_none() {
            return Err(format!("`{s}`: no even port in it (RTP takes even ports)"));
        }
        Ok(range)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PortRange, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("rtp_ports {e}")))
    }
}

/// The example function `serve` runs with when none is configured: its connections point at
/// the stand-in endpoints `tonegate demo` starts on 127.0.0.1:8081.
pub const EXAMPLE_FUNCTION: &str = "name: collect_payment
purpose: Collects a card payment for the caller's outstanding order once they agree to pay.
set_variables:
  order_id: '{{ vars.get(\"order_id\", \"10482\") }}'
connections:
  start:
    url: http://127.0.0.1:8081/start
  success:
    url: http://127.0.0.1:8081/success
  failure:
    url: http://127.0.0.1:8081/failure
";

impl ServeConfig {
    /// Reads a YAML config file (or the defaults), then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let mut config: ServeConfig = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                serde_yaml_ng::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("TONEGATE_LISTEN") {
            config.listen = v
                .parse()
                .map_err(|e| anyhow::anyhow!("TONEGATE_LISTEN `{v}`: {e}"))?;
        }
        if let Some(v) = env("TONEGATE_RTP_IP") {
            config.rtp_ip = v
                .parse()
                .map_err(|e| anyhow::anyhow!("TONEGATE_RTP_IP `{v}`: {e}"))?;
        }
        if let Some(v) = env("TONEGATE_RTP_PORTS") {
            config.rtp_ports = Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("TONEGATE_RTP_PORTS: {e}"))?,
            );
        }
        if let Some(v) = env("TONEGATE_TELEPHONY_TOKEN") {
            config.telephony_tokens = vec![v];
        }
        if let Some(v) = env("TONEGATE_AGENT_TOKEN") {
            config.agent_tokens = vec![v];
        }
        if let Some(v) = env("TONEGATE_FUNCTIONS") {
            config.functions = v.split(',').map(PathBuf::from).collect();
        }
        if let Some(v) = env("TONEGATE_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("TONEGATE_NG_CALLER") {
            config.ng_caller = match v.as_str() {
                "offerer" => crate::ng::request::CallerSide::Offerer,
                "answerer" => crate::ng::request::CallerSide::Answerer,
                _ => anyhow::bail!("TONEGATE_NG_CALLER `{v}`: use offerer or answerer"),
            };
        }
        if let Some(v) = env("TONEGATE_NG_LISTEN") {
            config.ng_listen = Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("TONEGATE_NG_LISTEN `{v}`: {e}"))?,
            );
        }
        Ok(config)
    }
}

impl ServeConfig {
    /// A gateway on 127.0.0.1 (any free HTTP port) with one function, `function` (a YAML
    /// function file's text), written into `dir` (which also holds the database), and one
    /// telephony and one agent token. For `tonegate demo` and the end-to-end tests.
    pub fn local(
        dir: &Path,
        function: &str,
        telephony_token: &str,
        agent_token: &str,
    ) -> std::io::Result<ServeConfig> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("function.yaml");
        std::fs::write(&file, function)?;
        Ok(ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            telephony_tokens: vec![telephony_token.into()],
            agent_tokens: vec![agent_token.into()],
            functions: vec![file],
            data_dir: dir.join("data"),
            ..ServeConfig::default()
        })
    }
}

/// A secret reference in the processor settings that cannot be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `env:NAME` names a variable that is not set (or is empty).
    #[error("processor {setting}: the environment variable {name} is not set")]
    MissingVariable {
        /// The setting (`secret_key`, `auth.token`, `headers.X-Key`, ...).
        setting: String,
        /// The variable.
        name: String,
    },
    /// `file:PATH` names a file that cannot be read, or that is empty.
    #[error("processor {setting}: cannot read the secret from {path}: {reason}")]
    UnreadableFile {
        /// The setting.
        setting: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Replaces a processor secret written as a reference by the secret it names:
/// `env:NAME` (an environment variable) or `file:PATH` (a file's content, without its final
/// line break: a Kubernetes or Docker secret mount). Anything else is the secret itself. The
/// error names the setting and the variable or file, never the secret.
pub fn resolve_secret_reference(
    setting: &str,
    value: &mut secrecy::SecretString,
) -> Result<(), SecretError> {
    use secrecy::ExposeSecret;
    let text = value.expose_secret();
    let resolved = if let Some(name) = text.strip_prefix("env:") {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                return Err(SecretError::MissingVariable {
                    setting: setting.to_owned(),
                    name: name.to_owned(),
                })
            }
        }
    } else if let Some(path) = text.strip_prefix("file:") {
        let unreadable = |reason: String| SecretError::UnreadableFile {
            setting: setting.to_owned(),
            path: path.to_owned(),
            reason,
        };
        let content = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        let secret = content.trim_end_matches(['\n', '\r']).to_owned();
        if secret.is_empty() {
            return Err(unreadable("the file is empty".to_owned()));
        }
        secret
    } else {
        return Ok(());
    };
    *value = secrecy::SecretString::from(resolved);
    Ok(())
}

/// `mask_replacement` in the config: what the relay puts where a key tone was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskReplacement {
    /// The codec's silence.
    #[default]
    Silence,
    /// Comfort noise at the caller's background level.
    Noise,
    /// A steady 1 kHz tone at -20 dBm0 (never a key).
    Tone,
}

impl From<MaskReplacement> for tonegate_media::scrub::Replacement {
    fn from(r: MaskReplacement) -> Self {
        match r {
            MaskReplacement::Silence => tonegate_media::scrub::Replacement::Silence,
            MaskReplacement::Noise => tonegate_media::scrub::Replacement::Noise,
            MaskReplacement::Tone => tonegate_media::scrub::Replacement::Tone,
        }
    }
}
