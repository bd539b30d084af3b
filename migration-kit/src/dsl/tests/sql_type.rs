use crate::dsl::{DslError, SqlType};

#[test]
fn accepts_plain_type_spellings() {
    let plain = [
        "uuid",
        "text",
        "_int4",
        "pg_catalog.text",
        "numeric(10, 2)",
        "numeric(10,2)",
        "character varying(255)",
        "timestamp(3) with time zone",
        "timestamp without time zone",
        "double precision",
        "national character varying",
        "bit varying(8)",
        "interval day to second",
        "text[]",
        "int[][]",
        "int[3]",
        "setof uuid",
        "TIMESTAMPTZ",
    ];
    for spelling in plain {
        assert!(SqlType::new(spelling).is_plain(), "{spelling}");
        assert_eq!(
            SqlType::try_new(spelling).map(|t| t.as_str().to_owned()),
            Ok(spelling.to_owned())
        );
    }
}

#[test]
fn rejects_everything_else() {
    let hostile = [
        "",
        " ",
        "setof",
        "uuid; DROP TABLE t",
        "uuid) SECURITY DEFINER",
        "uuid LEAKPROOF",
        "uuid SET search_path TO public",
        "numeric(a)",
        "numeric()",
        "numeric(1",
        "numeric((1))",
        "text[a]",
        "text[] with",
        "int[](1)",
        "1abc",
        "a..b",
        ".a",
        "a.",
        "a.1b",
        "uuid--",
        "uuid\n",
        "uuid\t",
        "t\u{eb}xt",
        "\"Quoted\"",
        "text COLLATE \"C\"",
        "$$",
        "(1) uuid",
        "[] uuid",
    ];
    for spelling in hostile {
        let sql_type = SqlType::new(spelling);
        assert!(!sql_type.is_plain(), "{spelling:?}");
        assert_eq!(
            SqlType::try_new(spelling),
            Err(DslError::InvalidTypeSpelling(spelling.to_owned()))
        );
    }
}

#[test]
fn error_names_the_spelling() {
    assert_eq!(
        DslError::InvalidTypeSpelling("a;b".to_owned()).to_string(),
        r#""a;b" is not a plain PostgreSQL type spelling"#
    );
}
