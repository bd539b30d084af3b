//! Tuple identifiers (`ctid`) as the sweep reads them back: parsed, then rendered from integers.

use std::fmt;

/// A heap tuple's physical address, `(page, line)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tid {
    /// The heap page.
    pub page: u32,
    /// The line pointer in it.
    pub line: u16,
}

impl Tid {
    /// Parses PostgreSQL's text form `(page,line)`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let inner = text.strip_prefix('(')?.strip_suffix(')')?;
        let (page, line) = inner.split_once(',')?;
        Some(Self {
            page: page.parse().ok()?,
            line: line.parse().ok()?,
        })
    }

    /// `'{"(1,2)","(3,4)"}'::tid[]`: a literal array of tids, rendered from the integers.
    pub fn array_literal(tids: &[Tid]) -> String {
        let items: Vec<String> = tids.iter().map(|t| format!("\"{t}\"")).collect();
        format!("'{{{}}}'::tid[]", items.join(","))
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{})", self.page, self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Tid::parse("(12345,7)");
        assert_eq!(
            t,
            Some(Tid {
                page: 12345,
                line: 7
            })
        );
        assert_eq!(
            Tid::array_literal(&[Tid { page: 1, line: 2 }, Tid { page: 3, line: 4 }]),
            r#"'{"(1,2)","(3,4)"}'::tid[]"#
        );
        assert_eq!(Tid::array_literal(&[]), "'{}'::tid[]");
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "(1,2",
            "1,2)",
            "(a,2)",
            "(1,70000)",
            "(1,2);DROP",
            "(-1,2)",
        ] {
            assert_eq!(Tid::parse(bad), None, "{bad}");
        }
    }
}
