//! One connection's prepared statements of the pipelined path, by SQL text and declared
//! parameter types.
//!
//! A statement prepared once per connection is bound and executed from then on: the server
//! skips parsing, analysis and (once it settles on a generic plan) planning, which is most of
//! what a cheap statement costs it. PostgreSQL's plan cache still re-analyses a statement when
//! the `search_path`, the role or `row_security` it was analysed under differ from the
//! current ones, so one statement serves shared tenants and every dedicated tenant's own
//! schema correctly (`service_one_trip.rs` alternates them on one connection).
//!
//! A statement is prepared inside the first unit that uses it, after that unit's opening, so
//! its names resolve as they do for that tenant (a table only dedicated schemas have prepares
//! for a dedicated tenant); a tenant whose schema gives another result type ("cached plan must
//! not change result type") runs that unit unnamed instead (`mod.rs`, `named_unit`).
//!
//! The names are tokio-postgres's (`s<n>`, counted per process), so a name is only safe on a
//! server session no other client can reach: behind a pooler the same name may mean another
//! client's statement (even a `DELETE`), and another client may `DEALLOCATE` ours and prepare
//! its own under the name. So the pool names statements only on connections that talk to
//! their server session directly, which it checks on connecting: the cancel key
//! (`BackendKeyData`) a connection was given names the backend that answers it. A pooler
//! (PgBouncer in any mode, and the like) hands out cancel keys of its own, since the server
//! behind a client changes; a pool that sees one stops naming statements for good
//! (`pool.rs`, `is_direct`). A pooler that keeps statements itself (PgBouncer 1.21 or later
//! with `max_prepared_statements`) is thus also served unnamed: slower, never unsafe.
//! `TENANTRY_PREPARED_STATEMENTS=off` turns naming off up front.
//!
//! Left as it is: PostgreSQL's plan cache does not notice a table that appears later in a
//! schema earlier on the `search_path` (a tenant-schema migration adding a table a dedicated
//! tenant so far reached in `public`): until the connection is replaced (30 minutes at most,
//! `pool.rs`) a cached statement keeps the table it resolved. SeaORM's sqlx pool caches
//! statements the same way.
//!
//! A literal the server folds when it analyses the statement (`'now'::timestamptz`, a
//! `TimeZone`-dependent cast) is fixed for the statement's life on that connection, as with any
//! prepared statement; write `now()` instead.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use tokio_postgres::Statement;
use tokio_postgres::types::Type;

/// At most this many statements per connection; a full cache is emptied (each dropped
/// statement is closed on the server), which an application's small set of statements never
/// reaches in practice.
const CAPACITY: usize = 256;

/// One cached statement with what it was prepared for: the SQL text and the types its
/// parameters are declared with (one text may be bound with different types).
struct Entry {
    sql: String,
    types: Vec<Type>,
    statement: Statement,
}

/// The cache of one connection, keyed by a hash of text and types (so a lookup allocates
/// nothing); a hit is compared in full, and a colliding entry is replaced.
#[derive(Default)]
pub(crate) struct StatementCache {
    hasher: RandomState,
    map: HashMap<u64, Entry>,
}

impl StatementCache {
    fn key(&self, sql: &str, types: &[Type]) -> u64 {
        let mut h = self.hasher.build_hasher();
        sql.hash(&mut h);
        types.hash(&mut h);
        h.finish()
    }

    /// The statement prepared for `sql` with `types`, if any.
    pub(crate) fn get(&self, sql: &str, types: &[Type]) -> Option<Statement> {
        self.map
            .get(&self.key(sql, types))
            .filter(|e| e.sql == sql && e.types == types)
            .map(|e| e.statement.clone())
    }

    /// Remembers `statement` for `sql` with `types`.
    pub(crate) fn insert(&mut self, sql: &str, types: &[Type], statement: Statement) {
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        let key = self.key(sql, types);
        self.map.insert(
            key,
            Entry {
                sql: sql.to_owned(),
                types: types.to_vec(),
                statement,
            },
        );
    }
}
