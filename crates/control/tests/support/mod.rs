//! A stand-in for the gateway, for whole-session tests: it performs a session's outputs with
//! the real PCI collector (keys typed on media time) and the real sandbox processor, and writes
//! everything the session says and sends into a transcript, one line per output.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};
use tonegate_control::config::{Format, Function};
use tonegate_control::session::{
    AgentAction, AgentEvent, CollectorCommand, Input, Invocation, Output, Session, StartFailure,
};
use tonegate_media::{ClockRate, Key, MediaTime};
use tonegate_pci::Sandbox;
use tonegate_pci::{pay, Collector, YearMonth};

pub fn at(ms: u64) -> MediaTime {
    MediaTime::new(ms * 8, ClockRate::NARROWBAND)
}

/// A function with a start, success and failure connection and the default messages, plus
/// `extra` YAML appended.
pub fn function(extra: &str) -> Arc<Function> {
    let yaml = format!(
        "name: collect_payment\npurpose: Collect a card payment\n\
         set_variables:\n  order_id: '{{{{ vars.get(\"order_id\") }}}}'\n  email: '{{{{ refs.email }}}}'\n\
         connections:\n  start:\n    url: http://127.0.0.1:9/start\n  success:\n    url: http://127.0.0.1:9/success\n  failure:\n    url: http://127.0.0.1:9/failure\n{extra}"
    );
    Arc::new(Function::from_str(&yaml, Format::Yaml, Path::new("test.yaml")).unwrap())
}

pub fn start_response(amount: u64) -> Value {
    json!({
        "amount": amount, "currency": "USD", "description": "Order #10482",
        "processor_parameters": {
            "invoice_id": "INV-10482", "is_postal_code_required": true,
            "is_security_code_required": true, "min_postal_code_length": 5
        }
    })
}

pub struct Harness {
    pub session: Session,
    pub collector: Option<Collector>,
    pub sandbox: Sandbox,
    pub clock: u64,
    pub transcript: Vec<String>,
    pub refused: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    pub fn new(function: Arc<Function>) -> Harness {
        let mut vars = serde_json::Map::new();
        vars.insert("order_id".into(), json!("10482"));
        let mut refs = serde_json::Map::new();
        refs.insert("email".into(), json!("caller@example.com"));
        let invocation = Invocation {
            params: serde_json::Map::new(),
            refs,
            vars,
        };
        let session = Session::new(
            function,
            "ps_8f21c0".into(),
            invocation,
            YearMonth::new(2026, 11).unwrap(),
        );
        let mut h = Harness {
            session,
            collector: None,
            sandbox: Sandbox::new(std::time::Duration::from_millis(20)),
            clock: 0,
            transcript: Vec::new(),
            refused: Vec::new(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
        };
        h.pump();
        h
    }

    pub fn start_ok(&mut self, body: Value) -> &mut Self {
        self.input(Input::StartResult(Ok(body)))
    }

    pub fn start_failed(&mut self, failure: StartFailure) -> &mut Self {
        self.input(Input::StartResult(Err(failure)))
    }

    pub fn agent(&mut self, action: AgentAction) -> &mut Self {
        if let Err(e) = self.session.handle_input(Input::Agent(action)) {
            self.refused.push(e.to_string());
        }
        self.pump();
        self
    }

    pub fn hang_up(&mut self) -> &mut Self {
        self.input(Input::HangUp)
    }

    /// The gateway shuts down with the call up.
    pub fn shut_down(&mut self) -> &mut Self {
        self.input(Input::Shutdown)
    }

    fn input(&mut self, input: Input) -> &mut Self {
        self.session.handle_input(input).unwrap();
        self.pump();
        self
    }

    /// Types keys 300 ms apart.
    pub fn keys(&mut self, keys: &str) -> &mut Self {
        for c in keys.chars() {
            self.wait(300);
            if let Some(collector) = &mut self.collector {
                collector.handle_key(at(self.clock), Key::from_char(c).unwrap());
            }
            self.pump();
        }
        self
    }

    /// Lets media time pass, firing the collector's timeouts.
    pub fn wait(&mut self, ms: u64) -> &mut Self {
        let until = self.clock + ms;
        loop {
            let due = self.collector.as_ref().and_then(Collector::poll_timeout);
            match due {
                Some(due) if due <= at(until) => {
                    self.clock = due.ticks() / 8;
                    self.collector.as_mut().unwrap().handle_timeout(due);
                    self.pump();
                }
                _ => break,
            }
        }
        self.clock = until;
        self
    }

    /// Performs outputs until there are none, feeding results back.
    pub fn pump(&mut self) {
        loop {
            if let Some(collector) = &mut self.collector {
                let mut events = Vec::new();
                while let Some(e) = collector.poll_event() {
                    events.push(e);
                }
                for e in events {
                    self.session.handle_input(Input::Collect(e)).unwrap();
                }
            }
            let Some(output) = self.session.poll_output() else {
                if self
                    .collector
                    .as_mut()
                    .map(|c| {
                        let mut more = false;
                        while let Some(e) = c.poll_event() {
                            more = true;
                            self.session.handle_input(Input::Collect(e)).unwrap();
                        }
                        more
                    })
                    .unwrap_or(false)
                {
                    continue;
                }
                return;
            };
            match output {
                Output::Agent(event) => self.transcript.push(line(&event)),
                Output::Connection { kind, body } => self.transcript.push(format!(
                    "connection {} {body}",
                    json!(kind).as_str().unwrap()
                )),
                Output::Collector(command) => {
                    let name = match &command {
                        CollectorCommand::Start(_) => "start",
                        CollectorCommand::Pause => "pause",
                        CollectorCommand::Resume => "resume",
                        CollectorCommand::DifferentCard => "different_card",
                        CollectorCommand::Cancel => "cancel",
                    };
                    self.transcript.push(format!("collector {name}"));
                    let now = at(self.clock);
                    match command {
                        CollectorCommand::Start(config) => {
                            let mut c = Collector::new(config).unwrap();
                            c.start(now);
                            self.collector = Some(c);
                        }
                        CollectorCommand::Pause => self.collector.as_mut().unwrap().pause(now),
                        CollectorCommand::Resume => self.collector.as_mut().unwrap().resume(now),
                        CollectorCommand::DifferentCard => {
                            self.collector.as_mut().unwrap().different_card(now)
                        }
                        CollectorCommand::Cancel => {
                            if let Some(c) = &mut self.collector {
                                c.cancel();
                                while c.poll_event().is_some() {}
                            }
                            self.collector = None;
                        }
                    }
                }
                Output::Pay(request) => {
                    self.transcript.push(format!(
                        "pay {} {} {}",
                        request.amount.0,
                        request.currency,
                        serde_json::Value::Object(request.processor_parameters.clone())
                    ));
                    let card = self
                        .collector
                        .as_mut()
                        .and_then(Collector::take_card)
                        .expect("a card to pay");
                    let outcome = self.runtime.block_on(pay(
                        &self.sandbox,
                        card,
                        &request,
                        SystemTime::now(),
                    ));
                    self.session.handle_input(Input::Payment(outcome)).unwrap();
                }
            }
        }
    }

    /// The transcript without per-digit progress lines.
    pub fn lines(&self) -> Vec<String> {
        self.transcript
            .iter()
            .filter(|l| !l.starts_with("progress "))
            .cloned()
            .collect()
    }

    pub fn print(&self) {
        for l in &self.transcript {
            println!("{l}");
        }
    }
}

fn line(event: &AgentEvent) -> String {
    let v = json!(event);
    match event {
        AgentEvent::Say { message, text } => {
            format!("say {}: {text}", json!(message).as_str().unwrap())
        }
        AgentEvent::StateChanged { from, to } => format!(
            "state {} -> {}",
            json!(from).as_str().unwrap(),
            json!(to).as_str().unwrap()
        ),
        AgentEvent::FieldStarted { field, attempt } => {
            format!("field {} #{attempt}", json!(field).as_str().unwrap())
        }
        AgentEvent::FieldProgress { field, digits } => {
            format!("progress {} {digits}", json!(field).as_str().unwrap())
        }
        AgentEvent::FieldCompleted { field, brand } => format!(
            "completed {} {}",
            json!(field).as_str().unwrap(),
            brand.map_or("-".to_owned(), |b| b.to_string())
        ),
        AgentEvent::FieldRejected {
            field,
            error,
            attempt,
            retries_left,
        } => format!(
            "rejected {} {} #{attempt} left {retries_left}",
            json!(field).as_str().unwrap(),
            json!(error).as_str().unwrap()
        ),
        AgentEvent::MaskedSummary { card } => format!("summary {card}"),
        AgentEvent::Outcome { .. } => format!("outcome {}", v),
    }
}
