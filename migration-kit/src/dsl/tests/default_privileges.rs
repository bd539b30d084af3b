use sea_query::PostgresQueryBuilder;

use crate::dsl::{DefaultObjects, DefaultPrivileges, Privilege};

#[test]
fn renders_grant() {
    assert_eq!(
        DefaultPrivileges::grant([Privilege::Select])
            .on(DefaultObjects::Tables)
            .to("r")
            .for_role("o")
            .in_schema("s")
            .to_string(PostgresQueryBuilder),
        r#"ALTER DEFAULT PRIVILEGES FOR ROLE "o" IN SCHEMA "s" GRANT SELECT ON TABLES TO "r""#
    );
    assert_eq!(
        DefaultPrivileges::grant([Privilege::Usage])
            .on(DefaultObjects::Schemas)
            .to("r")
            .to_public()
            .with_grant_option()
            .to_string(PostgresQueryBuilder),
        r#"ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO "r", PUBLIC WITH GRANT OPTION"#
    );
}

#[test]
fn renders_every_object_kind() {
    let cases = [
        (DefaultObjects::Tables, "TABLES"),
        (DefaultObjects::Sequences, "SEQUENCES"),
        (DefaultObjects::Functions, "FUNCTIONS"),
        (DefaultObjects::Types, "TYPES"),
        (DefaultObjects::Schemas, "SCHEMAS"),
    ];
    for (objects, keyword) in cases {
        assert_eq!(
            DefaultPrivileges::revoke([Privilege::All])
                .on(objects)
                .from("r")
                .to_string(PostgresQueryBuilder),
            format!(r#"ALTER DEFAULT PRIVILEGES REVOKE ALL PRIVILEGES ON {keyword} FROM "r""#)
        );
    }
}

#[test]
fn renders_revoke_with_lists_and_cascade() {
    assert_eq!(
        DefaultPrivileges::revoke([Privilege::Execute])
            .on(DefaultObjects::Functions)
            .for_role("o1")
            .for_role("o\"2")
            .in_schema("a")
            .in_schema("b")
            .from_public()
            .cascade()
            .to_string(PostgresQueryBuilder),
        r#"ALTER DEFAULT PRIVILEGES FOR ROLE "o1", "o""2" IN SCHEMA "a", "b" REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC CASCADE"#
    );
}

#[test]
fn reverse_swaps_and_round_trips() {
    let grant = DefaultPrivileges::grant([Privilege::Select, Privilege::Insert])
        .on(DefaultObjects::Tables)
        .for_role("o")
        .in_schema("s")
        .to("r")
        .to_owned();
    let revoke = grant.reverse();
    assert_eq!(
        revoke.to_string(PostgresQueryBuilder),
        r#"ALTER DEFAULT PRIVILEGES FOR ROLE "o" IN SCHEMA "s" REVOKE SELECT, INSERT ON TABLES FROM "r""#
    );
    assert_eq!(revoke.reverse(), grant);
}
