//! The SQLite side of the outbox: schema, and one method per statement. Synchronous, and time
//! is an argument: the runtime glue in `mod.rs` calls these from blocking tasks.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{named_params, OptionalExtension, Row};
use serde_json::{json, Value};
use tonegate_control::config::{Auth, Connection, Method};

use super::{
    DeliveryKind, DeliveryRecord, DeliveryState, Enqueued, NewDelivery, OutboxError, UnixMillis,
};

/// `PRAGMA application_id` of a tonegate outbox: "TonG".
pub(crate) const APPLICATION_ID: i32 = 0x546F_6E47;
/// `PRAGMA user_version` this build reads and writes.
pub(crate) const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY,
    session_reference  TEXT    NOT NULL,
    kind               TEXT    NOT NULL CHECK (kind IN ('success', 'failure')),
    url                TEXT    NOT NULL,
    method             TEXT    NOT NULL CHECK (method IN ('POST', 'PUT', 'PATCH')),
    headers            TEXT    NOT NULL,
    auth               TEXT,
    timeout_ms         INTEGER NOT NULL,
    max_attempts       INTEGER,
    body               TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (state IN ('pending', 'delivered', 'expired')),
    created_at_ms      INTEGER NOT NULL,
    deadline_at_ms     INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_attempt_at_ms INTEGER,
    last_error         TEXT,
    finished_at_ms     INTEGER,
    UNIQUE (session_reference, kind)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms) WHERE state = 'pending';
CREATE INDEX deliveries_finished ON deliveries (finished_at_ms) WHERE state <> 'pending';
";

const COLUMNS: &str = "id, session_reference, kind, url, method, headers, auth, timeout_ms, \
                       max_attempts, body, attempts, deadline_at_ms";

/// A pending delivery read back, with all that is needed to send it.
pub(crate) struct StoredDelivery {
    pub id: i64,
    pub session_reference: String,
    pub kind: DeliveryKind,
    pub connection: Connection,
    pub max_attempts: Option<u32>,
    pub body: Value,
    /// Attempts made before this one.
    pub attempts: u32,
    pub deadline: UnixMillis,
}

/// What became of an attempt.
pub(crate) enum Recorded {
    /// The receiver answered 2xx.
    Delivered,
    /// Failed; try again at this time.
    Retry { at: UnixMillis, error: String },
    /// Failed, and the deadline or the attempt limit is reached.
    Expired { error: String },
}

/// Rows by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StateCounts {
    pub pending: u64,
    pub delivered: u64,
    pub expired: u64,
}

pub(crate) struct Store {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl Store {
    /// Opens or creates the outbox at `path`, creating its directory. A file left by a crash
    /// is fine: SQLite rolls back an unfinished transaction and replays the WAL on open.
    pub fn open(path: &Path) -> Result<Store, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn =
            rusqlite::Connection::open(path).map_err(|source| {
                match OutboxError::from_sqlite(path, source) {
                    OutboxError::Sqlite { path, source } => {
                        OutboxError::CannotOpen { path, source }
                    }
                    other => other,
                }
            })?;
        let store = Store {
            conn,
            path: path.to_owned(),
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> OutboxError + '_ {
        |e| OutboxError::from_sqlite(&self.path, e)
    }

    fn configure(&self) -> Result<(), OutboxError> {
        // Wait for a lock held by another connection (a second gateway, an operator's sqlite3)
        // instead of failing at once.
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(self.err())?;
        // WAL: a commit is one append to the log, readers never block the writer, and a crash
        // at any point leaves the last committed state.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(self.err())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OutboxError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        // FULL: the log is synced at every commit, so an enqueue that returned survives a power
        // loss, not only a crash of the process (which NORMAL already survives). One commit per
        // session outcome and one per attempt: the sync costs nothing that matters here.
        // secure_delete: purged rows (with their auth secrets) are overwritten, not left in
        // free pages.
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
            .map_err(self.err())?;
        Ok(())
    }

    fn migrate(&self) -> Result<(), OutboxError> {
        let pragma = |name: &str| -> Result<i32, OutboxError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(self.err())
        };
        let application_id = pragma("application_id")?;
        let version = pragma("user_version")?;
        let tables: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        if application_id != APPLICATION_ID && (application_id != 0 || tables > 0) {
            return Err(OutboxError::ForeignDatabase {
                path: self.path.clone(),
                application_id,
            });
        }
        if application_id == APPLICATION_ID && version != SCHEMA_VERSION {
            return Err(OutboxError::SchemaVersion {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if application_id == 0 {
            // A new file: the schema and the marks that say it is ours, in one transaction.
            self.conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; \
                     PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Adds a delivery, or nothing when one exists for its session and kind. Committed (and
    /// synced) when this returns.
    pub fn insert(
        &self,
        delivery: &NewDelivery,
        now: UnixMillis,
        deadline: UnixMillis,
    ) -> Result<Enqueued, OutboxError> {
        let c = &delivery.connection;
        let auth = c.auth.as_ref().map(|a| encode_auth(a).to_string());
        let changed = self
            .conn
            .prepare_cached(
                "INSERT INTO deliveries (session_reference, kind, url, method, headers, auth, \
                 timeout_ms, max_attempts, body, created_at_ms, deadline_at_ms, \
                 next_attempt_at_ms) \
                 VALUES (:reference, :kind, :url, :method, :headers, :auth, :timeout_ms, \
                 :max_attempts, :body, :now, :deadline, :now) \
                 ON CONFLICT (session_reference, kind) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(named_params! {
                    ":reference": delivery.session_reference,
                    ":kind": delivery.kind.as_str(),
                    ":url": c.url,
                    ":method": method_str(c.method),
                    ":headers": json!(c.headers).to_string(),
                    ":auth": auth,
                    ":timeout_ms": i64::try_from(c.timeout_ms).unwrap_or(i64::MAX),
                    ":max_attempts": c.retries.map(|r| i64::from(r) + 1),
                    ":body": delivery.body.to_string(),
                    ":now": now.0,
                    ":deadline": deadline.0,
                })
            })
            .map_err(self.err())?;
        Ok(if changed == 0 {
            Enqueued::Duplicate
        } else {
            Enqueued::Queued
        })
    }

    /// Pending deliveries due at `now`, earliest first, leaving out `skip` (in flight).
    pub fn due(
        &self,
        now: UnixMillis,
        limit: usize,
        skip: &HashSet<i64>,
    ) -> Result<Vec<Result<StoredDelivery, OutboxError>>, OutboxError> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM deliveries WHERE state = 'pending' \
                 AND next_attempt_at_ms <= :now ORDER BY next_attempt_at_ms, id LIMIT :limit"
            ),
            now,
            limit.saturating_add(skip.len()),
            skip,
        )
        .map(|mut rows| {
            rows.truncate(limit);
            rows
        })
    }

    /// Every pending delivery, due or not, leaving out `skip`.
    pub fn pending(
        &self,
        skip: &HashSet<i64>,
    ) -> Result<Vec<Result<StoredDelivery, OutboxError>>, OutboxError> {
        self.select(
            &format!(
                "SELECT {COLUMNS} FROM deliveries WHERE state = 'pending' \
                 AND next_attempt_at_ms <= :now ORDER BY next_attempt_at_ms, id LIMIT :limit"
            ),
            UnixMillis(i64::MAX),
            usize::MAX,
            skip,
        )
    }

    fn select(
        &self,
        sql: &str,
        now: UnixMillis,
        limit: usize,
        skip: &HashSet<i64>,
    ) -> Result<Vec<Result<StoredDelivery, OutboxError>>, OutboxError> {
        let mut statement = self.conn.prepare_cached(sql).map_err(self.err())?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map(named_params! {":now": now.0, ":limit": limit}, read_row)
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(self.err())?;
            if !skip.contains(&row.id) {
                out.push(row.decode());
            }
        }
        Ok(out)
    }

    /// The earliest next attempt after `now` (excluded), to know how long the worker sleeps.
    pub fn next_due_after(&self, now: UnixMillis) -> Result<Option<UnixMillis>, OutboxError> {
        self.conn
            .prepare_cached(
                "SELECT min(next_attempt_at_ms) FROM deliveries \
                 WHERE state = 'pending' AND next_attempt_at_ms > ?1",
            )
            .and_then(|mut s| s.query_row([now.0], |r| r.get::<_, Option<i64>>(0)))
            .map(|t| t.map(UnixMillis))
            .map_err(self.err())
    }

    /// Records an attempt on a pending delivery made at `now`.
    pub fn record(&self, id: i64, now: UnixMillis, outcome: &Recorded) -> Result<(), OutboxError> {
        let (state, next, error, finished) = match outcome {
            Recorded::Delivered => (DeliveryState::Delivered, None, None, Some(now.0)),
            Recorded::Retry { at, error } => {
                (DeliveryState::Pending, Some(at.0), Some(error), None)
            }
            Recorded::Expired { error } => (DeliveryState::Expired, None, Some(error), Some(now.0)),
        };
        self.conn
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at_ms = :now, \
                 state = :state, next_attempt_at_ms = coalesce(:next, next_attempt_at_ms), \
                 last_error = coalesce(:error, last_error), finished_at_ms = :finished \
                 WHERE id = :id AND state = 'pending'",
            )
            .and_then(|mut s| {
                s.execute(named_params! {
                    ":now": now.0,
                    ":state": state.as_str(),
                    ":next": next,
                    ":error": error,
                    ":finished": finished,
                    ":id": id,
                })
            })
            .map_err(self.err())?;
        Ok(())
    }

    /// Marks a delivery that cannot be read back as expired, so that it is not read again.
    pub fn give_up(&self, id: i64, now: UnixMillis, reason: &str) -> Result<(), OutboxError> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = 'expired', finished_at_ms = ?1, last_error = ?2 \
                 WHERE id = ?3",
                rusqlite::params![now.0, reason, id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Rows by state.
    pub fn counts(&self) -> Result<StateCounts, OutboxError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT state, count(*) FROM deliveries GROUP BY state")
            .map_err(self.err())?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        let mut counts = StateCounts::default();
        for row in rows {
            let (state, n) = row.map_err(self.err())?;
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                _ => counts.expired += n,
            }
        }
        Ok(counts)
    }

    /// The delivery of a session's outcome, without its body or connection.
    pub fn get(
        &self,
        session_reference: &str,
        kind: DeliveryKind,
    ) -> Result<Option<DeliveryRecord>, OutboxError> {
        self.conn
            .prepare_cached(
                "SELECT state, attempts, created_at_ms, deadline_at_ms, next_attempt_at_ms, \
                 last_attempt_at_ms, last_error FROM deliveries \
                 WHERE session_reference = ?1 AND kind = ?2",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![session_reference, kind.as_str()], |r| {
                    let state: String = r.get(0)?;
                    Ok(DeliveryRecord {
                        session_reference: session_reference.to_owned(),
                        kind,
                        state: DeliveryState::parse(&state).unwrap_or(DeliveryState::Expired),
                        attempts: r.get(1)?,
                        created_at: UnixMillis(r.get(2)?),
                        deadline: UnixMillis(r.get(3)?),
                        next_attempt_at: UnixMillis(r.get(4)?),
                        last_attempt_at: r.get::<_, Option<i64>>(5)?.map(UnixMillis),
                        last_error: r.get(6)?,
                    })
                })
                .optional()
            })
            .map_err(self.err())
    }

    /// Deletes delivered and expired rows finished before `before`.
    pub fn purge(&self, before: UnixMillis) -> Result<usize, OutboxError> {
        self.conn
            .execute(
                "DELETE FROM deliveries WHERE state <> 'pending' AND finished_at_ms < ?1",
                [before.0],
            )
            .map_err(self.err())
    }
}

/// A row as read, before its columns are checked.
struct RawRow {
    id: i64,
    session_reference: String,
    kind: String,
    url: String,
    method: String,
    headers: String,
    auth: Option<String>,
    timeout_ms: i64,
    max_attempts: Option<i64>,
    body: String,
    attempts: i64,
    deadline: i64,
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        session_reference: r.get(1)?,
        kind: r.get(2)?,
        url: r.get(3)?,
        method: r.get(4)?,
        headers: r.get(5)?,
        auth: r.get(6)?,
        timeout_ms: r.get(7)?,
        max_attempts: r.get(8)?,
        body: r.get(9)?,
        attempts: r.get(10)?,
        deadline: r.get(11)?,
    })
}

impl RawRow {
    fn decode(self) -> Result<StoredDelivery, OutboxError> {
        let id = self.id;
        // Reasons name the column, never its content: the content may be a secret.
        let bad = |column: &str| OutboxError::StoredDelivery {
            id,
            reason: format!("column `{column}` does not hold what tonegate wrote"),
        };
        let kind = DeliveryKind::parse(&self.kind).ok_or_else(|| bad("kind"))?;
        let method: Method =
            serde_json::from_value(Value::String(self.method)).map_err(|_| bad("method"))?;
        let headers: BTreeMap<String, String> =
            serde_json::from_str(&self.headers).map_err(|_| bad("headers"))?;
        let auth: Option<Auth> = match self.auth {
            Some(text) => Some(serde_json::from_str(&text).map_err(|_| bad("auth"))?),
            None => None,
        };
        let body = serde_json::from_str(&self.body).map_err(|_| bad("body"))?;
        Ok(StoredDelivery {
            id,
            session_reference: self.session_reference,
            kind,
            connection: Connection {
                url: self.url,
                method,
                headers,
                auth,
                timeout_ms: u64::try_from(self.timeout_ms).map_err(|_| bad("timeout_ms"))?,
                retries: None,
            },
            max_attempts: self
                .max_attempts
                .map(|n| u32::try_from(n).map_err(|_| bad("max_attempts")))
                .transpose()?,
            body,
            attempts: u32::try_from(self.attempts).map_err(|_| bad("attempts"))?,
            deadline: UnixMillis(self.deadline),
        })
    }
}

fn method_str(method: Method) -> &'static str {
    match method {
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
    }
}

/// The configuration's own shape (`{type: bearer, token}`), so that it reads back with
/// `Auth`'s `Deserialize`.
fn encode_auth(auth: &Auth) -> Value {
    match auth {
        Auth::Bearer { token } => json!({"type": "bearer", "token": token}),
        Auth::Basic { username, password } => {
            json!({"type": "basic", "username": username, "password": password})
        }
    }
}
