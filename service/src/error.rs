//! The one error type of the service.

use sea_orm::{DbErr, RuntimeErr};

/// What went wrong, in words a caller can act on. Messages never carry SQL text, constraint
/// names or values of another tenant's rows: database errors are classified, logged with
/// their detail under `tracing`, and returned as one of these kinds.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The row does not exist for this tenant (it may exist for another; we do not say).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The credential is missing, unknown, revoked, expired, or its tenant is suspended.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The change conflicts with existing data (duplicate, still referenced, last owner).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input is malformed; names the field.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A required part is not configured or the database is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl ServiceError {
    /// Shorthand for [`ServiceError::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

impl ServiceError {
    /// The kind of a database error with this SQLSTATE, when the service classifies it (the
    /// sqlx path and the pipelined tokio-postgres path share this table).
    pub(crate) fn from_sqlstate(code: &str) -> Option<Self> {
        Some(match code {
            "23505" => Self::Conflict("a row with the same key already exists".into()),
            "23503" => {
                Self::Conflict("the change refers to, or is referred to by, another row".into())
            }
            migration::dedicated::SCHEMA_UNAVAILABLE_SQLSTATE => {
                tracing::warn!("a dedicated tenant's schema is missing");
                Self::Unavailable("the tenant's schema is unavailable".into())
            }
            migration::dedicated::NOT_READ_COMMITTED_SQLSTATE => {
                tracing::error!(
                    "a tenant transaction was opened at another level than READ COMMITTED"
                );
                Self::Unavailable("the tenant transaction could not be opened".into())
            }
            "42501" => Self::Forbidden("the database refused this for the current tenant".into()),
            "23502" | "23514" | "22P02" | "22001" | "22023" => {
                Self::invalid("input", "a value is missing or malformed")
            }
            "40001" | "40P01" => Self::Conflict("concurrent change; retry".into()),
            code if code.starts_with("08") || code.starts_with("57") => {
                Self::Unavailable("database connection lost".into())
            }
            _ => return None,
        })
    }
}

impl From<DbErr> for ServiceError {
    fn from(err: DbErr) -> Self {
        // The detail stays in our logs; the caller gets the kind only.
        tracing::debug!(error = %err, "database error");
        match sqlstate(&err)
            .as_deref()
            .and_then(ServiceError::from_sqlstate)
        {
            Some(kind) => kind,
            None => match err {
                DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                    Self::Unavailable("database unavailable".into())
                }
                DbErr::RecordNotFound(_) => Self::NotFound("record"),
                _ => {
                    tracing::warn!(error = %err, "unclassified database error");
                    Self::Unavailable("internal database error".into())
                }
            },
        }
    }
}

/// The SQLSTATE of a database error, when PostgreSQL sent one.
pub fn sqlstate(err: &DbErr) -> Option<String> {
    let runtime = match err {
        DbErr::Exec(e) | DbErr::Query(e) | DbErr::Conn(e) => e,
        _ => return None,
    };
    match runtime {
        RuntimeErr::SqlxError(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned()),
        _ => None,
    }
}

/// The service's result type.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
