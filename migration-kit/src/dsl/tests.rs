//! Rendering tests for the tenancy DSL: exact SQL for every builder and
//! variant, hostile names, and `reverse()`.

mod access;
mod default_privileges;
mod function;
mod index;
mod policy;
mod quoting;
mod rls;
mod role;
mod sql_type;
mod statement_builder;
