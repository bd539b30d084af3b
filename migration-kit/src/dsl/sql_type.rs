//! Type names used in function signatures and grants.

use super::DslError;

/// A PostgreSQL type name as written in a function signature, e.g. `uuid`,
/// `pg_catalog.text`, `numeric(10, 2)`, `timestamp(3) with time zone`,
/// `text[]` or `setof uuid`.
///
/// A spelling is *plain* when it is built from ASCII letters, digits, `_`,
/// `.`, spaces, type modifiers in parentheses (digits, commas and spaces
/// only), array brackets (digits only), and where every word after the
/// type's own name is one of the words PostgreSQL uses in multi-word type
/// names (`precision`, `varying`, `with`, `without`, `time`, `zone`, `to`,
/// `year`, `month`, `day`, `hour`, `minute`, `second`, `char`, `character`).
/// A plain spelling is rendered as written.
///
/// Anything else cannot be trusted to stay inside its slot of the
/// statement, so [`SqlType::new`] keeps it but renders the whole text as one
/// double-quoted identifier: PostgreSQL then looks for a type of that exact
/// name and rejects the statement, and no SQL can be smuggled in. Use
/// [`SqlType::try_new`] to get an error instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SqlType {
    spelling: String,
    plain: bool,
}

/// Words allowed after the first word of a multi-word type name.
const CONTINUATION_WORDS: [&str; 15] = [
    "precision",
    "varying",
    "with",
    "without",
    "time",
    "zone",
    "to",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "char",
    "character",
];

impl SqlType {
    /// Wraps `spelling`; a spelling that is not plain renders as a quoted
    /// identifier (see the type's documentation).
    pub fn new(spelling: impl Into<String>) -> Self {
        let spelling = spelling.into();
        let plain = is_plain_type_spelling(&spelling);
        Self { spelling, plain }
    }

    /// Wraps `spelling`, or fails if it is not a plain type spelling.
    pub fn try_new(spelling: impl Into<String>) -> Result<Self, DslError> {
        let sql_type = Self::new(spelling);
        if sql_type.plain {
            Ok(sql_type)
        } else {
            Err(DslError::InvalidTypeSpelling(sql_type.spelling))
        }
    }

    /// The spelling as given.
    pub fn as_str(&self) -> &str {
        &self.spelling
    }

    /// Whether the spelling is plain and therefore rendered as written.
    pub fn is_plain(&self) -> bool {
        self.plain
    }
}

impl From<&str> for SqlType {
    fn from(spelling: &str) -> Self {
        Self::new(spelling)
    }
}

impl From<String> for SqlType {
    fn from(spelling: String) -> Self {
        Self::new(spelling)
    }
}

impl From<&String> for SqlType {
    fn from(spelling: &String) -> Self {
        Self::new(spelling.as_str())
    }
}

/// Checks the grammar described on [`SqlType`].
fn is_plain_type_spelling(spelling: &str) -> bool {
    let bytes = spelling.as_bytes();
    let mut i = 0;
    let mut has_name = false;
    let mut in_array_suffix = false;
    while i < bytes.len() {
        match bytes[i] {
            b' ' => i += 1,
            b'(' if has_name && !in_array_suffix => {
                let Some(end) = group_end(bytes, i, b')', |b| {
                    b.is_ascii_digit() || b == b',' || b == b' '
                }) else {
                    return false;
                };
                i = end;
            }
            b'[' if has_name => {
                let Some(end) = group_end(bytes, i, b']', |b| b.is_ascii_digit()) else {
                    return false;
                };
                in_array_suffix = true;
                i = end;
            }
            b if (b.is_ascii_alphabetic() || b == b'_') && !in_array_suffix => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.'))
                {
                    i += 1;
                }
                let word = &spelling[start..i];
                if has_name {
                    if !CONTINUATION_WORDS
                        .iter()
                        .any(|w| w.eq_ignore_ascii_case(word))
                    {
                        return false;
                    }
                } else if !is_dotted_name(word) {
                    return false;
                } else if !word.eq_ignore_ascii_case("setof") {
                    has_name = true;
                }
            }
            _ => return false,
        }
    }
    has_name
}

/// Returns the index just past the `close` byte of the group opened at
/// `open`, if every byte inside satisfies `allowed` and at least one is a
/// digit (or the group is an empty array bracket).
fn group_end(bytes: &[u8], open: usize, close: u8, allowed: impl Fn(u8) -> bool) -> Option<usize> {
    let mut i = open + 1;
    let mut digits = 0;
    while i < bytes.len() && bytes[i] != close {
        if !allowed(bytes[i]) {
            return None;
        }
        if bytes[i].is_ascii_digit() {
            digits += 1;
        }
        i += 1;
    }
    let closed = i < bytes.len();
    let non_empty_modifier = close == b']' || digits > 0;
    (closed && non_empty_modifier).then_some(i + 1)
}

/// `name` or `schema.name`: dot-separated parts, each starting with a letter
/// or underscore.
fn is_dotted_name(word: &str) -> bool {
    word.split('.').all(|part| {
        part.as_bytes()
            .first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    })
}
