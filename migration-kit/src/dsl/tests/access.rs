use sea_query::PostgresQueryBuilder;

use crate::dsl::{Grant, GrantObject, Grantee, Privilege, Revoke};

#[test]
fn renders_table_grants() {
    assert_eq!(
        Grant::privileges([Privilege::Select, Privilege::Insert])
            .on(GrantObject::tables(["a", "b"]))
            .to("r")
            .to_string(PostgresQueryBuilder),
        r#"GRANT SELECT, INSERT ON TABLE "a", "b" TO "r""#
    );
    assert_eq!(
        Grant::privileges([Privilege::Update, Privilege::Delete, Privilege::Truncate])
            .on(GrantObject::table(("tenancy", "tenants")))
            .to("r1")
            .to_public()
            .with_grant_option()
            .to_string(PostgresQueryBuilder),
        r#"GRANT UPDATE, DELETE, TRUNCATE ON TABLE "tenancy"."tenants" TO "r1", PUBLIC WITH GRANT OPTION"#
    );
}

#[test]
fn renders_every_object_kind() {
    let cases = [
        (
            GrantObject::all_tables_in_schema("s"),
            r#"ALL TABLES IN SCHEMA "s""#,
        ),
        (GrantObject::sequence(("s", "seq")), r#"SEQUENCE "s"."seq""#),
        (
            GrantObject::all_sequences_in_schema("s"),
            r#"ALL SEQUENCES IN SCHEMA "s""#,
        ),
        (
            GrantObject::function(("s", "f"), ["uuid"]),
            r#"FUNCTION "s"."f"(uuid)"#,
        ),
        (
            GrantObject::function("g", Vec::<&str>::new()),
            r#"FUNCTION "g"()"#,
        ),
        (
            GrantObject::all_functions_in_schema("s"),
            r#"ALL FUNCTIONS IN SCHEMA "s""#,
        ),
        (GrantObject::schema("s"), r#"SCHEMA "s""#),
        (GrantObject::database("d"), r#"DATABASE "d""#),
    ];
    for (object, rendered) in cases {
        assert_eq!(
            Grant::privileges([Privilege::Usage])
                .on(object.clone())
                .to("r")
                .to_string(PostgresQueryBuilder),
            format!(r#"GRANT USAGE ON {rendered} TO "r""#)
        );
        assert_eq!(
            Revoke::privileges([Privilege::Usage])
                .on(object)
                .from("r")
                .to_string(PostgresQueryBuilder),
            format!(r#"REVOKE USAGE ON {rendered} FROM "r""#)
        );
    }
}

#[test]
fn renders_every_privilege() {
    let all = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
        Privilege::Truncate,
        Privilege::References,
        Privilege::Trigger,
        Privilege::Usage,
        Privilege::Execute,
        Privilege::Create,
        Privilege::Connect,
        Privilege::Temporary,
        Privilege::All,
    ];
    assert_eq!(
        Grant::privileges(all)
            .on(GrantObject::database("d"))
            .grantee(Grantee::Public)
            .to_string(PostgresQueryBuilder),
        r#"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, USAGE, EXECUTE, CREATE, CONNECT, TEMPORARY, ALL PRIVILEGES ON DATABASE "d" TO PUBLIC"#
    );
}

#[test]
fn keeps_on_keyword_without_object() {
    assert_eq!(
        Grant::privileges([Privilege::Usage])
            .to("r")
            .to_string(PostgresQueryBuilder),
        r#"GRANT USAGE ON  TO "r""#
    );
}

#[test]
fn renders_revoke_options() {
    assert_eq!(
        Revoke::privileges([Privilege::Execute])
            .on(GrantObject::function(("s", "f"), ["uuid", "text"]))
            .from("r")
            .from_public()
            .cascade()
            .to_string(PostgresQueryBuilder),
        r#"REVOKE EXECUTE ON FUNCTION "s"."f"(uuid, text) FROM "r", PUBLIC CASCADE"#
    );
}

#[test]
fn quotes_hostile_names() {
    assert_eq!(
        Grant::privileges([Privilege::Select])
            .on(GrantObject::table("a\"b"))
            .to("x\"; DROP ROLE postgres; --")
            .to_string(PostgresQueryBuilder),
        r#"GRANT SELECT ON TABLE "a""b" TO "x""; DROP ROLE postgres; --""#
    );
}

#[test]
fn grant_and_revoke_reverse_each_other() {
    let grant = Grant::privileges([Privilege::Select])
        .on(GrantObject::all_tables_in_schema("s"))
        .to("r")
        .to_owned();
    let revoke = grant.reverse();
    assert_eq!(
        revoke.to_string(PostgresQueryBuilder),
        r#"REVOKE SELECT ON ALL TABLES IN SCHEMA "s" FROM "r""#
    );
    assert_eq!(revoke.reverse(), grant);

    let with_option = grant.clone().with_grant_option().to_owned();
    assert_eq!(with_option.reverse(), revoke);

    let cascading = revoke.clone().cascade().to_owned();
    assert_eq!(cascading.reverse(), grant);
}

#[test]
fn renders_role_membership() {
    let grant = Grant::role("tenantry_app")
        .to("alice")
        .to("b\"ob")
        .to_owned();
    assert_eq!(
        grant.to_string(PostgresQueryBuilder),
        r#"GRANT "tenantry_app" TO "alice", "b""ob""#
    );
    let revoke = grant.reverse();
    assert_eq!(
        revoke.to_string(PostgresQueryBuilder),
        r#"REVOKE "tenantry_app" FROM "alice", "b""ob""#
    );
    assert_eq!(revoke.reverse(), grant);
    assert_eq!(
        Revoke::role("g").from("m").to_string(PostgresQueryBuilder),
        r#"REVOKE "g" FROM "m""#
    );
}
