//! Shared by the gateway's tests: the workspace root, the `tonegate` binary run in it, and a
//! token search for the leak tests.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root: fixtures, examples and docs are found from it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `tonegate` binary under test, to run in the workspace root.
pub fn tonegate_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tonegate"));
    command.current_dir(root());
    command
}

/// Runs `tonegate ARGS` in the workspace root and waits for its output. The tests read the
/// keys of test fixtures, so `replay` gets `--show-keys` (digits are masked by default:
/// `fixtures.rs::digits_are_masked_unless_asked_for`).
pub fn tonegate(args: &[&str]) -> Output {
    let show: &[&str] = if args.first() == Some(&"replay") {
        &["--show-keys"]
    } else {
        &[]
    };
    tonegate_command()
        .args(args)
        .args(show)
        .output()
        .expect("tonegate runs")
}

/// Whether `needle` stands on its own in `text` (not inside a longer word or hex id, where
/// three or four digits occur by chance).
pub fn contains_token(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// Whether the digits of `digits` occur in `haystack` in order, each separated from the next by
/// at most four bytes that are not ASCII letters or digits, whatever comes before or after.
/// Meant for numbers long enough not to occur by chance (nine digits or more): a number stored
/// next to other digits or letters in a SQLite page (`…7392058164031700…`), written with
/// separators (`267-084-131`, `['2', '6', …]` from a `Debug` of characters) or in UTF-16 is
/// still found, where [`contains_token`] would miss it.
pub fn contains_digits(haystack: &[u8], digits: &str) -> bool {
    const MAX_GAP: usize = 4;
    let digits = digits.as_bytes();
    assert!(
        !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        "contains_digits searches for digits"
    );
    (0..haystack.len()).any(|start| {
        let mut at = start;
        for (n, &digit) in digits.iter().enumerate() {
            if n > 0 {
                let mut gap = 0;
                while gap < MAX_GAP && haystack.get(at).is_some_and(|b| !b.is_ascii_alphanumeric())
                {
                    at += 1;
                    gap += 1;
                }
            }
            if haystack.get(at) != Some(&digit) {
                return false;
            }
            at += 1;
        }
        true
    })
}

/// Every byte of every file in `dir` (the gateway's data directory: the outbox database and
/// its WAL and shared-memory files while they exist).
pub fn files_in(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(std::fs::read(path).unwrap());
        }
    }
    bytes
}

/// Every row of the outbox database at `path`, each cell as text (integers in decimal, blobs
/// as they are), one row a line: what the store holds, whatever the column types.
pub fn outbox_rows(path: &Path) -> String {
    use rusqlite::types::ValueRef;
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut rows = String::new();
    let mut statement = db.prepare("SELECT * FROM deliveries").unwrap();
    let columns = statement.column_count();
    let mut query = statement.query([]).unwrap();
    while let Some(row) = query.next().unwrap() {
        for i in 0..columns {
            match row.get_ref(i).unwrap() {
                ValueRef::Null => rows.push_str("NULL"),
                ValueRef::Integer(n) => rows.push_str(&n.to_string()),
                ValueRef::Real(x) => rows.push_str(&x.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => rows.push_str(&String::from_utf8_lossy(t)),
            }
            rows.push('\t');
        }
        rows.push('\n');
    }
    rows
}

/// The key presses tonegate's own listener (telephone-events and in-band tones) hears in
/// `datagrams`, RTP as the agent's leg received it, 20 ms apart.
pub fn presses_heard(datagrams: &[Vec<u8>]) -> usize {
    use tonegate_media::listener::{Listener, ListenerConfig, ListenerEvent};
    let mut listener = Listener::new(ListenerConfig::default());
    let t0 = std::time::Instant::now();
    for (i, datagram) in datagrams.iter().enumerate() {
        let _ = listener.handle_packet(
            t0 + std::time::Duration::from_millis(20 * i as u64),
            datagram,
        );
    }
    listener.finish();
    let mut heard = 0;
    while let Some(event) = listener.poll_event() {
        heard += usize::from(matches!(event, ListenerEvent::Press { .. }));
    }
    heard
}

/// Waits for the next agent event of `kind`, like `tonegate_testkit::agent::wait_for`, but
/// keeps every event that arrives on the way in `seen`, so a leak test searches them all (not
/// only the ones it waits for).
pub async fn wait_keeping(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    kind: &str,
    seen: &mut Vec<serde_json::Value>,
) -> serde_json::Value {
    let limit = std::time::Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout(limit, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` event within {limit:?}; seen {seen:?}"))
            .unwrap_or_else(|| panic!("the event stream ended before `{kind}`; seen {seen:?}"));
        seen.push(event.clone());
        if event["type"] == kind {
            return event;
        }
    }
}
