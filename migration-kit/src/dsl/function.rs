//! `CREATE FUNCTION` / `DROP FUNCTION`.

use sea_query::{DynIden, IntoIden, TableName};

use super::SqlType;

/// Entry point for functions.
#[derive(Debug, Clone, Copy)]
pub struct Function;

/// The language a function body is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum FunctionLanguage {
    /// `LANGUAGE sql`
    #[default]
    Sql,
    /// `LANGUAGE plpgsql`
    PlPgSql,
}

/// How a function's result may change between calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Volatility {
    /// `IMMUTABLE`: same arguments, same result, forever.
    Immutable,
    /// `STABLE`: same result within one statement.
    Stable,
    /// `VOLATILE` (PostgreSQL's default).
    #[default]
    Volatile,
}

/// What a function returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FunctionReturns {
    /// `RETURNS <type>`
    Type(SqlType),
    /// `RETURNS TABLE ("column" <type>, …)`
    Table(Vec<(DynIden, SqlType)>),
}

/// `CREATE [OR REPLACE] FUNCTION "s"."f"("a" <type>, …) RETURNS … LANGUAGE …
/// <volatility> [STRICT] [PARALLEL SAFE] SECURITY INVOKER|DEFINER
/// [SET search_path = …] AS $tenantry$<body>$tenantry$`.
///
/// Language (default `sql`), volatility (default `VOLATILE`) and security
/// (default `SECURITY INVOKER`) are always rendered explicitly. `RETURNS`,
/// `SET search_path` and `AS` are rendered only when set. The body is
/// dollar-quoted with the tag `$tenantry$`, or `$tenantry_<n>$` for the
/// smallest `n` whose tag does not occur in the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionCreateStatement {
    pub(crate) procedure: bool,
    pub(crate) name: Option<TableName>,
    pub(crate) or_replace: bool,
    pub(crate) args: Vec<(DynIden, SqlType)>,
    pub(crate) returns: Option<FunctionReturns>,
    pub(crate) language: FunctionLanguage,
    pub(crate) volatility: Volatility,
    pub(crate) strict: bool,
    pub(crate) parallel_safe: bool,
    pub(crate) security_definer: bool,
    pub(crate) search_path: Option<Vec<DynIden>>,
    pub(crate) body: Option<String>,
}

/// `DROP FUNCTION [IF EXISTS] "s"."f"(<type>, …) [CASCADE]`.
///
/// The argument list is always rendered, so `()` means "the function
/// without arguments".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionDropStatement {
    pub(crate) procedure: bool,
    pub(crate) name: Option<TableName>,
    pub(crate) arg_types: Vec<SqlType>,
    pub(crate) if_exists: bool,
    pub(crate) cascade: bool,
}

impl Function {
    /// Starts a [`FunctionCreateStatement`].
    pub fn create() -> FunctionCreateStatement {
        FunctionCreateStatement::default()
    }

    /// Starts a [`FunctionDropStatement`].
    pub fn drop() -> FunctionDropStatement {
        FunctionDropStatement::default()
    }
}

impl FunctionCreateStatement {
    /// Sets the function name, e.g. `("tenancy", "current_tenant_id")`.
    pub fn name<T: Into<TableName>>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// `CREATE PROCEDURE` instead: called with `CALL`, which runs it without planning and
    /// executing a `SELECT` around it. A procedure has no `RETURNS` and no volatility, so
    /// those (and `STRICT`, `PARALLEL SAFE`) are not rendered.
    pub fn procedure(&mut self) -> &mut Self {
        self.procedure = true;
        self
    }

    /// `OR REPLACE`.
    pub fn or_replace(&mut self) -> &mut Self {
        self.or_replace = true;
        self
    }

    /// Appends an argument `"name" <type>`; see [`SqlType`] for type spellings.
    pub fn arg<N: IntoIden, T: Into<SqlType>>(&mut self, name: N, sql_type: T) -> &mut Self {
        self.args.push((name.into_iden(), sql_type.into()));
        self
    }

    /// `RETURNS <type>`.
    pub fn returns<T: Into<SqlType>>(&mut self, sql_type: T) -> &mut Self {
        self.returns = Some(FunctionReturns::Type(sql_type.into()));
        self
    }

    /// `RETURNS TABLE ("column" <type>, …)`.
    pub fn returns_table<I, N, T>(&mut self, columns: I) -> &mut Self
    where
        I: IntoIterator<Item = (N, T)>,
        N: IntoIden,
        T: Into<SqlType>,
    {
        let columns = columns
            .into_iter()
            .map(|(name, sql_type)| (name.into_iden(), sql_type.into()))
            .collect();
        self.returns = Some(FunctionReturns::Table(columns));
        self
    }

    /// Sets the body language (default `sql`).
    pub fn language(&mut self, language: FunctionLanguage) -> &mut Self {
        self.language = language;
        self
    }

    /// Sets the volatility (default `VOLATILE`).
    pub fn volatility(&mut self, volatility: Volatility) -> &mut Self {
        self.volatility = volatility;
        self
    }

    /// `STRICT`: returns null on any null argument without running.
    pub fn strict(&mut self) -> &mut Self {
        self.strict = true;
        self
    }

    /// `PARALLEL SAFE`.
    pub fn parallel_safe(&mut self) -> &mut Self {
        self.parallel_safe = true;
        self
    }

    /// `SECURITY DEFINER`: runs with the owner's privileges. Pair it with
    /// [`set_search_path`](Self::set_search_path).
    pub fn security_definer(&mut self) -> &mut Self {
        self.security_definer = true;
        self
    }

    /// `SECURITY INVOKER` (the default): runs with the caller's privileges.
    pub fn security_invoker(&mut self) -> &mut Self {
        self.security_definer = false;
        self
    }

    /// `SET search_path = "a", "b"` while the function runs; an empty list
    /// renders `SET search_path = ''`.
    pub fn set_search_path<I, T>(&mut self, schemas: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: IntoIden,
    {
        self.search_path = Some(schemas.into_iter().map(IntoIden::into_iden).collect());
        self
    }

    /// Sets the body, rendered dollar-quoted after `AS`.
    pub fn body<T: Into<String>>(&mut self, body: T) -> &mut Self {
        self.body = Some(body.into());
        self
    }

    /// The function name, if set.
    pub fn get_name(&self) -> Option<&TableName> {
        self.name.as_ref()
    }

    /// The argument types, in order: the function's signature.
    pub fn get_arg_types(&self) -> Vec<SqlType> {
        self.args
            .iter()
            .map(|(_, sql_type)| sql_type.clone())
            .collect()
    }

    /// `DROP FUNCTION IF EXISTS` with the same name and argument types.
    pub fn reverse(&self) -> FunctionDropStatement {
        FunctionDropStatement {
            procedure: self.procedure,
            name: self.name.clone(),
            arg_types: self.get_arg_types(),
            if_exists: true,
            cascade: false,
        }
    }
}

impl FunctionDropStatement {
    /// `DROP PROCEDURE` instead.
    pub fn procedure(&mut self) -> &mut Self {
        self.procedure = true;
        self
    }

    /// Sets the function name, e.g. `("tenancy", "current_tenant_id")`.
    pub fn name<T: Into<TableName>>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Appends one argument type of the signature.
    pub fn arg_type<T: Into<SqlType>>(&mut self, sql_type: T) -> &mut Self {
        self.arg_types.push(sql_type.into());
        self
    }

    /// Appends argument types of the signature.
    pub fn arg_types<I, T>(&mut self, sql_types: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: Into<SqlType>,
    {
        self.arg_types.extend(sql_types.into_iter().map(Into::into));
        self
    }

    /// `IF EXISTS`.
    pub fn if_exists(&mut self) -> &mut Self {
        self.if_exists = true;
        self
    }

    /// `CASCADE`: also drop objects that depend on the function.
    pub fn cascade(&mut self) -> &mut Self {
        self.cascade = true;
        self
    }
}
