//! Errors reported by the tenancy DSL.

/// An input the DSL refuses to render verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DslError {
    /// A type name that is not a plain PostgreSQL type spelling
    /// (see [`SqlType`](super::SqlType) for what is accepted).
    #[error("{0:?} is not a plain PostgreSQL type spelling")]
    InvalidTypeSpelling(String),
}
