//! The durable outbox: success and failure connections that are never lost.
//!
//! A session's outcome is enqueued once ([`Outbox::enqueue`]) into a SQLite file; the delivery
//! worker ([`Outbox::run`]) sends each pending delivery with
//! [`crate::connection::call`] until the receiver answers 2xx, retrying with
//! exponential backoff and full jitter until the delivery's deadline, after which it is marked
//! expired. A restart (or a `kill -9`) loses nothing that was enqueued: the worker of the next
//! process picks up every pending row, including those that fell due while it was down.
//!
//! ```text
//!  control::Output::Connection ──► enqueue ──► deliveries (SQLite, WAL, synchronous=FULL)
//!    {kind: success|failure,        (committed     │  state: pending ──2xx──► delivered
//!     body (masked)}                 on return)    │         pending ──deadline──► expired
//!                                                  ▼
//!                         run (tokio task): due rows ──► connection::call ──► record attempt
//!                         flush (shutdown): every pending row, once, within a deadline
//! ```
//!
//! Delivery is at least once: a crash between the receiver's answer and the commit that records
//! it sends the delivery again, so receivers de-duplicate on `session_reference_id`. The store
//! holds one delivery per (session reference, kind), whatever the number of enqueues.
//!
//! Wall clock: due times and deadlines are Unix milliseconds in the file, since they must mean
//! the same after a restart; a step of the system clock moves them.
//!
//! `docs/outbox.md` describes the file, the states and the schedule for operators.

mod backoff;
mod error;
mod store;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonegate_control::config::Connection;
use tonegate_control::session::ConnectionKind;

use crate::connection::{self, CallError};

pub use backoff::{Backoff, Jitter};
pub use error::OutboxError;
use store::{Recorded, Store, StoredDelivery};

/// The default database file, relative to the working directory.
pub const DEFAULT_PATH: &str = "data/tonegate.db";

/// A time on the wall clock: milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The wall clock now.
    pub fn now() -> UnixMillis {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> UnixMillis {
        UnixMillis(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// The time from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }
}

/// Which outcome a delivery reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    /// The success connection.
    Success,
    /// The failure connection.
    Failure,
}

impl DeliveryKind {
    /// The name stored in the file and written in logs: `success` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Success => "success",
            DeliveryKind::Failure => "failure",
        }
    }

    fn parse(s: &str) -> Option<DeliveryKind> {
        match s {
            "success" => Some(DeliveryKind::Success),
            "failure" => Some(DeliveryKind::Failure),
            _ => None,
        }
    }
}

impl fmt::Display for DeliveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<ConnectionKind> for DeliveryKind {
    type Error = OutboxError;

    fn try_from(kind: ConnectionKind) -> Result<Self, Self::Error> {
        match kind {
            ConnectionKind::Success => Ok(DeliveryKind::Success),
            ConnectionKind::Failure => Ok(DeliveryKind::Failure),
            ConnectionKind::Start => Err(OutboxError::StartConnection),
        }
    }
}

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not yet answered 2xx; tried when due.
    Pending,
    /// The receiver answered 2xx. Final.
    Delivered,
    /// The deadline (or the connection's `retries`) ran out first. Final.
    Expired,
}

impl DeliveryState {
    /// The name stored in the file: `pending`, `delivered` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<DeliveryState> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "expired" => Some(DeliveryState::Expired),
            _ => None,
        }
    }
}

/// A session outcome to deliver.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    /// The session's reference (`session_reference_id`); one delivery per reference and kind.
    pub session_reference: String,
    /// Success or failure.
    pub kind: DeliveryKind,
    /// Where and how to send it. Its URL, method, headers, auth and `timeout_ms` are stored;
    /// `retries`, when set, limits the attempts to `retries + 1` besides the deadline.
    pub connection: Connection,
    /// The JSON body, as the session produced it (masked).
    pub body: Value,
}

/// What [`Outbox::enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored, committed, and the worker told.
    Queued,
    /// The session's outcome of this kind was already stored; nothing changed.
    Duplicate,
}

/// One delivery as the outbox sees it (no body, no connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The session's reference.
    pub session_reference: String,
    /// Success or failure.
    pub kind: DeliveryKind,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made (answered or not).
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: UnixMillis,
    /// After this, a failed attempt expires it.
    pub deadline: UnixMillis,
    /// When it is next due (meaningful while pending).
    pub next_attempt_at: UnixMillis,
    /// When it was last tried.
    pub last_attempt_at: Option<UnixMillis>,
    /// Why the last failed attempt failed (`unreachable: ...`, `answered HTTP 503`, ...).
    pub last_error: Option<String>,
}

/// Counts for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deliveries waiting (the outbox depth).
    pub pending: u64,
    /// Deliveries answered 2xx still in the file (see [`Policy::retention`]).
    pub delivered: u64,
    /// Deliveries given up still in the file.
    pub expired: u64,
    /// Attempts made by this process since it opened the outbox (a counter).
    pub attempts: u64,
    /// Of those, attempts that were not a delivery's first (a counter).
    pub retries: u64,
}

/// What [`Outbox::flush`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushReport {
    /// Deliveries tried.
    pub attempted: u64,
    /// Of those, answered 2xx.
    pub delivered: u64,
    /// Deliveries still pending afterwards: they are sent after the next start.
    pub pending: u64,
    /// Whether the deadline cut attempts short (those are tried again after the next start).
    pub timed_out: bool,
}

/// How deliveries are retried and bounded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// The wait between attempts (default 1 s doubling up to 5 min, full jitter).
    pub backoff: Backoff,
    /// How long after its enqueue a delivery may still be retried (default 24 h). A delivery
    /// is always tried at least once, even when the gateway was down past its deadline.
    pub deadline: Duration,
    /// Deliveries in flight at once (default 16).
    pub max_in_flight: usize,
    /// How long delivered and expired rows stay in the file before they are deleted (default
    /// 7 days). An enqueue for the same session and kind within this time is a duplicate.
    pub retention: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            backoff: Backoff::default(),
            deadline: Duration::from_secs(24 * 60 * 60),
            max_in_flight: 16,
            retention: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

impl Policy {
    fn check(&self) -> Result<(), OutboxError> {
        self.backoff.check().map_err(OutboxError::Policy)?;
        if self.max_in_flight == 0 {
            return Err(OutboxError::Policy(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if self.deadline.is_zero() {
            return Err(OutboxError::Policy("deadline must be more than 0".into()));
        }
        Ok(())
    }
}

/// How often the worker deletes old finished rows.
const PURGE_EVERY: Duration = Duration::from_secs(60 * 60);
/// How long the worker waits after the database failed before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The durable outbox. Open it once per data directory, share it in an `Arc`, and spawn
/// [`Outbox::run`].
pub struct Outbox {
    store: Arc<Mutex<Store>>,
    path: PathBuf,
    policy: Policy,
    client: reqwest::Client,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    wake: Notify,
    attempts: AtomicU64,
    retries: AtomicU64,
    /// An exclusive lock on `<database>.lock`, held while the outbox is open: one process per
    /// database (the OS lets go of it when the process ends, however it ends).
    lock: std::fs::File,
}

/// Takes the exclusive lock that makes a database one process's: two gateways on one file
/// would each deliver every webhook.
fn lock_database(db: &Path) -> Result<std::fs::File, OutboxError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| OutboxError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OutboxError::InUse {
            path: db.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(OutboxError::Lock { path, source }),
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Refuses a body whose `session_reference_id` is not the delivery's: the unique key and the
/// receiver's de-duplication would then disagree.
fn check_reference(delivery: &NewDelivery) -> Result<(), OutboxError> {
    match delivery
        .body
        .get("session_reference_id")
        .and_then(Value::as_str)
    {
        Some(in_body) if in_body != delivery.session_reference => {
            Err(OutboxError::ReferenceMismatch {
                session_reference: delivery.session_reference.clone(),
                in_body: in_body.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// A delivery this process is sending; dropping it (attempt finished or aborted) frees it.
struct Claim {
    in_flight: Arc<Mutex<HashSet<i64>>>,
    id: i64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.id);
    }
}

/// A poisoned lock only means a panic elsewhere; the set and the connection stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a database task ended without a result. Not the panic's message, which tokio's
/// `JoinError` would quote and which can format anything: the panic hook has reported it,
/// redacted (`crate::panic_hook`).
fn task_end(e: &tokio::task::JoinError) -> String {
    if e.is_panic() {
        "it panicked (see the panic report in the log)".to_owned()
    } else {
        "it was cancelled (the runtime is shutting down)".to_owned()
    }
}

impl Outbox {
    /// Opens the outbox at `path` (creating the file and its directory), ready to enqueue
    /// and deliver. Safe after a crash: SQLite recovers the last committed state.
    pub fn open(path: impl AsRef<Path>, policy: Policy) -> Result<Outbox, OutboxError> {
        policy.check()?;
        let path = path.as_ref().to_owned();
        let store = Store::open(&path)?;
        let lock = lock_database(&path)?;
        Ok(Outbox {
            store: Arc::new(Mutex::new(store)),
            path,
            policy,
            client: connection::client(),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            wake: Notify::new(),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            lock,
        })
    }

    /// Lets go of the database for another process, before this value is dropped (a gateway
    /// that stopped while tasks still hold it). Nothing may be enqueued afterwards.
    pub fn release(&self) {
        let _ = self.lock.unlock();
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy it was opened with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `f` on the store in a blocking task: SQLite calls (and their fsync) must not hold
    /// up the runtime's threads.
    async fn with_store<T, F>(&self, f: F) -> Result<T, OutboxError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, OutboxError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&lock(&store)))
            .await
            .map_err(|e| OutboxError::Task(task_end(&e)))?
    }

    /// Stores a session outcome for delivery: durable (committed and synced) when this
    /// returns `Ok`. A second enqueue for the same session reference and kind changes nothing
    /// and returns [`Enqueued::Duplicate`]. The write runs on a blocking thread: dropping this
    /// future does not cancel it, so an enqueue that was started may still be committed.
    pub async fn enqueue(&self, delivery: NewDelivery) -> Result<Enqueued, OutboxError> {
        check_reference(&delivery)?;
        let now = UnixMillis::now();
        let deadline = now.plus(self.policy.deadline);
        let reference = delivery.session_reference.clone();
        let kind = delivery.kind;
        let enqueued = self
            .with_store(move |s| s.insert(&delivery, now, deadline))
            .await?;
        self.enqueued(enqueued, &reference, kind);
        Ok(enqueued)
    }

    /// [`Outbox::enqueue`] for synchronous callers: blocks the calling thread for one commit
    /// (an fsync, a few milliseconds). Do not call it from a current-thread runtime's task
    /// while that runtime must answer other work promptly.
    pub fn enqueue_blocking(&self, delivery: NewDelivery) -> Result<Enqueued, OutboxError> {
        check_reference(&delivery)?;
        let now = UnixMillis::now();
        let deadline = now.plus(self.policy.deadline);
        let enqueued = lock(&self.store).insert(&delivery, now, deadline)?;
        self.enqueued(enqueued, &delivery.session_reference, delivery.kind);
        Ok(enqueued)
    }

    fn enqueued(&self, enqueued: Enqueued, reference: &str, kind: DeliveryKind) {
        match enqueued {
            Enqueued::Queued => {
                tracing::debug!(session_reference = %reference, %kind, "delivery enqueued");
                self.wake.notify_one();
            }
            Enqueued::Duplicate => {
                tracing::debug!(session_reference = %reference, %kind, "duplicate delivery ignored");
            }
        }
    }

    /// Counts by state (from the file) and attempts (by this process).
    pub async fn stats(&self) -> Result<Stats, OutboxError> {
        let counts = self.with_store(Store::counts).await?;
        Ok(Stats {
            pending: counts.pending,
            delivered: counts.delivered,
            expired: counts.expired,
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        })
    }

    /// The delivery of a session's outcome of `kind`, if one was enqueued (and not purged).
    pub async fn delivery(
        &self,
        session_reference: &str,
        kind: DeliveryKind,
    ) -> Result<Option<DeliveryRecord>, OutboxError> {
        let reference = session_reference.to_owned();
        self.with_store(move |s| s.get(&reference, kind)).await
    }

    fn claim(&self, id: i64) -> Option<Claim> {
        lock(&self.in_flight).insert(id).then(|| Claim {
            in_flight: Arc::clone(&self.in_flight),
            id,
        })
    }

    /// Reads what `read` returns and claims each delivery; a row that cannot be read back is
    /// expired (logged with its id) so that it is not read again.
    async fn take<F>(&self, read: F) -> Result<Vec<(StoredDelivery, Claim)>, OutboxError>
    where
        F: FnOnce(
                &Store,
                &HashSet<i64>,
            ) -> Result<Vec<Result<StoredDelivery, OutboxError>>, OutboxError>
            + Send
            + 'static,
    {
        let skip = lock(&self.in_flight).clone();
        let rows = self.with_store(move |s| read(s, &skip)).await?;
        let mut out = Vec::new();
        for row in rows {
            match row {
                Ok(row) => {
                    if let Some(claim) = self.claim(row.id) {
                        out.push((row, claim));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "expiring an outbox delivery that cannot be read back");
                    if let OutboxError::StoredDelivery { id, reason } = e {
                        let now = UnixMillis::now();
                        self.with_store(move |s| s.give_up(id, now, &reason))
                            .await?;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Sends one delivery once and records what became of it. Returns whether it was
    /// delivered.
    async fn attempt(&self, row: StoredDelivery, claim: Claim) -> bool {
        let result = connection::call(&self.client, &row.connection, &row.body).await;
        let now = UnixMillis::now();
        let attempts = row.attempts.saturating_add(1);
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if row.attempts > 0 {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        let reference = &row.session_reference;
        let kind = row.kind;
        let outcome = match result {
            // A 2xx is a delivery, whatever its body: receivers often answer `OK`.
            Ok(_) | Err(CallError::NotJson(_)) => {
                tracing::info!(session_reference = %reference, %kind, attempts, "delivered");
                Recorded::Delivered
            }
            Err(e) => {
                let error = e.to_string();
                let out_of_attempts = row.max_attempts.is_some_and(|max| attempts >= max);
                if now >= row.deadline || out_of_attempts {
                    tracing::warn!(
                        session_reference = %reference,
                        %kind,
                        attempts,
                        last_error = %error,
                        "delivery expired: {}; the receiver never answered 2xx",
                        if out_of_attempts { "no retries left" } else { "past its deadline" },
                    );
                    Recorded::Expired { error }
                } else {
                    let at = now
                        .plus(self.policy.backoff.delay(attempts))
                        .min(row.deadline);
                    tracing::info!(
                        session_reference = %reference,
                        %kind,
                        attempts,
                        error = %error,
                        retry_in_ms = now.until(at).as_millis() as u64,
                        "delivery attempt failed"
                    );
                    Recorded::Retry { at, error }
                }
            }
        };
        let delivered = matches!(outcome, Recorded::Delivered);
        let id = row.id;
        if let Err(e) = self.with_store(move |s| s.record(id, now, &outcome)).await {
            // The row stays pending as it was: it is sent again (at least once).
            tracing::error!(session_reference = %reference, %kind, error = %e, "cannot record a delivery attempt");
        }
        drop(claim);
        self.wake.notify_one();
        delivered
    }

    /// The delivery worker: sends due deliveries, at most [`Policy::max_in_flight`] at once,
    /// until `shutdown` is cancelled; then waits for the attempts in flight (each bounded by
    /// its connection's `timeout_ms`) and returns. Run one per outbox. Database errors are
    /// logged and retried every second: the worker never gives up on its own.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks: JoinSet<bool> = JoinSet::new();
        let mut next_purge = tokio::time::Instant::now();
        loop {
            while tasks.try_join_next().is_some() {}
            let now = UnixMillis::now();
            if tokio::time::Instant::now() >= next_purge {
                next_purge += PURGE_EVERY;
                let before = UnixMillis(now.0.saturating_sub(
                    i64::try_from(self.policy.retention.as_millis()).unwrap_or(i64::MAX),
                ));
                match self.with_store(move |s| s.purge(before)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "purged finished outbox deliveries"),
                    Err(e) => tracing::error!(error = %e, "cannot purge the outbox"),
                }
            }
            let free = self.policy.max_in_flight.saturating_sub(tasks.len());
            let mut wait = Duration::from_secs(60 * 60);
            if free > 0 {
                match self.take(move |s, skip| s.due(now, free, skip)).await {
                    Ok(due) => {
                        for (row, claim) in due {
                            let me = Arc::clone(&self);
                            tasks.spawn(async move { me.attempt(row, claim).await });
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read due deliveries");
                        wait = STORE_RETRY;
                    }
                }
            }
            match self.with_store(move |s| s.next_due_after(now)).await {
                Ok(Some(at)) => wait = wait.min(UnixMillis::now().until(at)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the next due time");
                    wait = STORE_RETRY;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Tries every pending delivery once now, due or not (at most
    /// [`Policy::max_in_flight`] at once), and waits for them, and for those the worker has
    /// in flight, up to `deadline`. For graceful shutdown. Attempts cut short are not recorded
    /// and are sent again after the next start.
    pub async fn flush(self: &Arc<Self>, deadline: Duration) -> Result<FlushReport, OutboxError> {
        let until = tokio::time::Instant::now() + deadline;
        let rows = self.take(Store::pending).await?;
        let attempted = rows.len() as u64;
        let permits = Arc::new(Semaphore::new(self.policy.max_in_flight));
        let mut tasks = JoinSet::new();
        for (row, claim) in rows {
            let me = Arc::clone(self);
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                me.attempt(row, claim).await
            });
        }
        let mut delivered = 0;
        let finished = tokio::time::timeout_at(until, async {
            while let Some(result) = tasks.join_next().await {
                delivered += u64::from(result.unwrap_or(false));
            }
            while !lock(&self.in_flight).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let pending = self.with_store(Store::counts).await?.pending;
        Ok(FlushReport {
            attempted,
            delivered,
            pending,
            timed_out: !finished,
        })
    }
}
