//! The one error type of the daemon. Each error has a [`Kind`]; the HTTP layer maps kinds to
//! status codes in exactly one place, so nothing else needs to know about HTTP.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The caller sent something malformed (a bad time, a bad range, bad JSON).
    BadRequest,
    /// No identity, or one that is not valid (SPEC §5): log in, or send a token.
    Unauthorized,
    /// An identity that may not do this (a viewer asking for an admin action, a cross-site
    /// request, a wrong setup code).
    Forbidden,
    /// Too many failed attempts from one address; the message says when to try again.
    TooManyRequests,
    /// The thing asked for does not exist.
    NotFound,
    /// The request is well formed but clashes with the state (deleting a locked recording).
    Conflict,
    /// `If-Match` names a version that is no longer current (the config changed meanwhile).
    PreconditionFailed,
    /// A change that must say which version it replaces (`If-Match`) did not.
    PreconditionRequired,
    /// A byte range that lies outside the resource.
    RangeNotSatisfiable,
    /// A request body larger than the endpoint accepts.
    TooLarge,
    /// The configuration is invalid.
    Config,
    /// A file's content is not what it should be (a corrupt or truncated MP4).
    Corrupt,
    /// The index file belongs to another schema version.
    Schema,
    /// An I/O failure of the box itself.
    Io,
    /// A fault in the daemon itself (a database failure, a broken invariant).
    Internal,
}

#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, msg)
    }

    pub fn corrupt(msg: impl Into<String>) -> Self {
        Self::new(Kind::Corrupt, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(Kind::Internal, msg)
    }

    /// Prefixes the message with where it happened, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            msg: format!("{what}: {}", self.msg),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => Kind::NotFound,
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => Kind::Corrupt,
            _ => Kind::Io,
        };
        Error::new(kind, e.to_string())
    }
}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::internal(format!("index: {e}"))
            }
        }
    )*};
}

impl From<redb::DatabaseError> for Error {
    fn from(e: redb::DatabaseError) -> Self {
        let kind = match &e {
            redb::DatabaseError::DatabaseAlreadyOpen
            | redb::DatabaseError::LockProtocolMismatch => {
                return Error::new(Kind::Io, "index: already open by another process");
            }
            redb::DatabaseError::UpgradeRequired(_) => Kind::Schema,
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => Kind::Corrupt,
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::UnexpectedEof
                    || io.kind() == std::io::ErrorKind::InvalidData =>
            {
                Kind::Corrupt
            }
            _ => Kind::Internal,
        };
        Error::new(kind, format!("index: {e}"))
    }
}

internal_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
