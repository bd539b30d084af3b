//! `sea_orm::StatementBuilder` renders exactly what `to_string` renders.

use sea_orm::{DbBackend, StatementBuilder};
use sea_query::{Expr, ExprTrait, PostgresQueryBuilder};

use crate::dsl::{
    DefaultObjects, DefaultPrivileges, Function, Grant, GrantObject, Policy, Privilege, Revoke,
    Role, RowLevelSecurity,
};

fn assert_same<S: StatementBuilder>(statement: &S, expected: String) {
    let built = StatementBuilder::build(statement, &DbBackend::Postgres);
    assert_eq!(built.to_string(), expected);
    assert_eq!(built.sql, expected);
    assert_eq!(built.values, None);
    assert_eq!(built.db_backend, DbBackend::Postgres);
}

#[test]
fn every_statement_builds_its_postgres_rendering() {
    let rls = RowLevelSecurity::enable("t");
    assert_same(&rls, rls.to_string(PostgresQueryBuilder));
    let policy = Policy::create()
        .name("p")
        .table("t")
        .using(Expr::col("n").eq(1))
        .to_owned();
    assert_same(&policy, policy.to_string(PostgresQueryBuilder));
    assert_same(
        &policy.reverse(),
        policy.reverse().to_string(PostgresQueryBuilder),
    );
    let function = Function::create().name("f").body("SELECT 1").to_owned();
    assert_same(&function, function.to_string(PostgresQueryBuilder));
    assert_same(
        &function.reverse(),
        function.reverse().to_string(PostgresQueryBuilder),
    );
    let role = Role::create().name("r").if_not_exists().to_owned();
    assert_same(&role, role.to_string(PostgresQueryBuilder));
    assert_same(
        &role.reverse(),
        role.reverse().to_string(PostgresQueryBuilder),
    );
    let grant = Grant::privileges([Privilege::Select])
        .on(GrantObject::table("t"))
        .to("r")
        .to_owned();
    assert_same(&grant, grant.to_string(PostgresQueryBuilder));
    assert_same(
        &grant.reverse(),
        grant.reverse().to_string(PostgresQueryBuilder),
    );
    let membership = Grant::role("g").to("m").to_owned();
    assert_same(&membership, membership.to_string(PostgresQueryBuilder));
    let removal = Revoke::role("g").from("m").to_owned();
    assert_same(&removal, removal.to_string(PostgresQueryBuilder));
    let defaults = DefaultPrivileges::grant([Privilege::Select])
        .on(DefaultObjects::Tables)
        .to("r")
        .to_owned();
    assert_same(&defaults, defaults.to_string(PostgresQueryBuilder));
    assert_same(
        &defaults.reverse(),
        defaults.reverse().to_string(PostgresQueryBuilder),
    );
}

#[test]
fn other_backends_get_the_postgres_text_without_panicking() {
    let statement = RowLevelSecurity::force("t");
    for backend in [DbBackend::MySql, DbBackend::Sqlite] {
        let built = StatementBuilder::build(&statement, &backend);
        assert_eq!(built.sql, statement.to_string(PostgresQueryBuilder));
        assert_eq!(built.db_backend, backend);
    }
}
