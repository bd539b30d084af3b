//! Writes `CREATE FUNCTION` / `DROP FUNCTION` (and their `PROCEDURE` forms).

use sea_query::PostgresQueryBuilder;

use super::sql;
use crate::dsl::{
    FunctionCreateStatement, FunctionDropStatement, FunctionLanguage, FunctionReturns, Volatility,
};

/// `CREATE [OR REPLACE] FUNCTION … AS $tenantry$…$tenantry$`
pub(super) fn write_create(
    builder: &PostgresQueryBuilder,
    statement: &FunctionCreateStatement,
    out: &mut String,
) {
    out.push_str("CREATE ");
    if statement.or_replace {
        out.push_str("OR REPLACE ");
    }
    out.push_str(if statement.procedure {
        "PROCEDURE "
    } else {
        "FUNCTION "
    });
    if let Some(name) = &statement.name {
        sql::qualified_name(builder, name, out);
    }
    out.push('(');
    sql::list(&statement.args, out, |(name, sql_type), out| {
        sql::iden(builder, name, out);
        out.push(' ');
        sql::sql_type(builder, sql_type, out);
    });
    out.push(')');
    match statement.returns.as_ref().filter(|_| !statement.procedure) {
        Some(FunctionReturns::Type(sql_type)) => {
            out.push_str(" RETURNS ");
            sql::sql_type(builder, sql_type, out);
        }
        Some(FunctionReturns::Table(columns)) => {
            out.push_str(" RETURNS TABLE (");
            sql::list(columns, out, |(name, sql_type), out| {
                sql::iden(builder, name, out);
                out.push(' ');
                sql::sql_type(builder, sql_type, out);
            });
            out.push(')');
        }
        None => {}
    }
    out.push_str(match statement.language {
        FunctionLanguage::Sql => " LANGUAGE sql",
        FunctionLanguage::PlPgSql => " LANGUAGE plpgsql",
    });
    if !statement.procedure {
        out.push_str(match statement.volatility {
            Volatility::Immutable => " IMMUTABLE",
            Volatility::Stable => " STABLE",
            Volatility::Volatile => " VOLATILE",
        });
        if statement.strict {
            out.push_str(" STRICT");
        }
        if statement.parallel_safe {
            out.push_str(" PARALLEL SAFE");
        }
    }
    out.push_str(if statement.security_definer {
        " SECURITY DEFINER"
    } else {
        " SECURITY INVOKER"
    });
    if let Some(schemas) = &statement.search_path {
        out.push_str(" SET search_path = ");
        if schemas.is_empty() {
            out.push_str("''");
        } else {
            sql::idens(builder, schemas, out);
        }
    }
    if let Some(body) = &statement.body {
        out.push_str(" AS ");
        sql::dollar_quoted(body, out);
    }
}

/// `DROP FUNCTION [IF EXISTS] "s"."f"(<type>, …) [CASCADE]`
pub(super) fn write_drop(
    builder: &PostgresQueryBuilder,
    statement: &FunctionDropStatement,
    out: &mut String,
) {
    out.push_str(if statement.procedure {
        "DROP PROCEDURE "
    } else {
        "DROP FUNCTION "
    });
    if statement.if_exists {
        out.push_str("IF EXISTS ");
    }
    if let Some(name) = &statement.name {
        sql::qualified_name(builder, name, out);
    }
    sql::signature(builder, &statement.arg_types, out);
    if statement.cascade {
        out.push_str(" CASCADE");
    }
}
