//! Why the outbox refused to open or to do something, with what a person can do about it.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Every way the outbox can fail. No variant carries a body, a header or an auth secret.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The data directory could not be created.
    #[error(
        "cannot create the data directory {}: {source}; create it, or give a path whose \
         directory is writable",
        path.display()
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// SQLite could not open or create the file.
    #[error(
        "cannot open or create the outbox database {}: {source}; check that the path is a file \
         in a writable directory",
        path.display()
    )]
    CannotOpen {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The file exists but is not a SQLite database (or is encrypted).
    #[error(
        "{} is not a SQLite database; move it aside (tonegate creates a new outbox) or point the \
         data directory elsewhere",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// Another process has this outbox open.
    #[error(
        "another process (a second tonegate?) has the outbox {} open; run one gateway per data \
         directory: give this one its own data_dir, or stop the other",
        path.display()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The lock file beside the database could not be created or locked.
    #[error(
        "cannot lock {}: {source}; check that the data directory is writable",
        path.display()
    )]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file is a SQLite database of another application.
    #[error(
        "{} is a SQLite database but not a tonegate outbox (application id {application_id:#x}); \
         point the data directory elsewhere",
        path.display()
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
        /// The `PRAGMA application_id` found.
        application_id: i32,
    },
    /// The file was written by a tonegate with another schema.
    #[error(
        "the outbox {} has schema version {found}, this tonegate reads version {supported}; run \
         the tonegate that wrote it until its outbox is empty, or move the file aside",
        path.display()
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i32,
        /// The version this build reads and writes.
        supported: i32,
    },
    /// The disk (or the quota) is full: the write was not made.
    #[error(
        "the disk holding {} is full; nothing was written: free space and the gateway goes on",
        path.display()
    )]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// The file or its directory cannot be written.
    #[error(
        "{} cannot be written (read-only file, directory or file system); give the gateway's \
         user write access to the file and its directory",
        path.display()
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// Another connection held a lock for longer than the busy timeout.
    #[error(
        "{} stayed locked by another process for more than 5 s; is another tonegate using the \
         same data directory?",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// SQLite found damaged pages.
    #[error(
        "the outbox {} is damaged; stop the gateway, keep a copy, and try `sqlite3 FILE \
         .recover`, or move it aside",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
    },
    /// Any other SQLite failure.
    #[error("outbox database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// A stored delivery that cannot be read back (edited by hand, or a bug).
    #[error("outbox delivery {id} cannot be read back: {reason}")]
    StoredDelivery {
        /// The row id.
        id: i64,
        /// What is wrong with it (never its body or auth).
        reason: String,
    },
    /// The body names another session than the delivery.
    #[error(
        "the body's session_reference_id `{in_body}` is not the delivery's session reference \
         `{session_reference}`"
    )]
    ReferenceMismatch {
        /// The delivery's session reference.
        session_reference: String,
        /// The body's `session_reference_id`.
        in_body: String,
    },
    /// Only success and failure connections go through the outbox.
    #[error("the start connection is called synchronously, not through the outbox")]
    StartConnection,
    /// A [`Policy`](super::Policy) that cannot work.
    #[error("outbox policy: {0}")]
    Policy(String),
    /// A database task panicked or its runtime is shutting down.
    #[error("an outbox database task stopped before finishing: {0}")]
    Task(String),
}

impl OutboxError {
    /// Names the cause of a SQLite error on `path`.
    pub(crate) fn from_sqlite(path: &std::path::Path, source: rusqlite::Error) -> OutboxError {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => OutboxError::DiskFull { path },
            Some(ErrorCode::ReadOnly) => OutboxError::ReadOnly { path },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                OutboxError::Locked { path }
            }
            Some(ErrorCode::NotADatabase) => OutboxError::NotADatabase { path },
            Some(ErrorCode::DatabaseCorrupt) => OutboxError::Corrupt { path },
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                OutboxError::CannotOpen { path, source }
            }
            _ => OutboxError::Sqlite { path, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;
    use std::path::Path;

    fn code(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_codes_become_causes_a_person_can_act_on() {
        let p = Path::new("/data/tonegate.db");
        let full = OutboxError::from_sqlite(p, code(ffi::SQLITE_FULL));
        assert!(matches!(full, OutboxError::DiskFull { .. }));
        assert!(full.to_string().contains("/data/tonegate.db"));
        assert!(full.to_string().contains("full"));
        assert!(matches!(
            OutboxError::from_sqlite(p, code(ffi::SQLITE_READONLY)),
            OutboxError::ReadOnly { .. }
        ));
        assert!(matches!(
            OutboxError::from_sqlite(p, code(ffi::SQLITE_BUSY)),
            OutboxError::Locked { .. }
        ));
        assert!(matches!(
            OutboxError::from_sqlite(p, code(ffi::SQLITE_NOTADB)),
            OutboxError::NotADatabase { .. }
        ));
        assert!(matches!(
            OutboxError::from_sqlite(p, code(ffi::SQLITE_CORRUPT)),
            OutboxError::Corrupt { .. }
        ));
        assert!(matches!(
            OutboxError::from_sqlite(p, code(ffi::SQLITE_CANTOPEN)),
            OutboxError::CannotOpen { .. }
        ));
    }
}
