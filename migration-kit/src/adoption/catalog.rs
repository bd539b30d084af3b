//! What the adoption planner reads from the live catalog (read-only queries).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};

/// Separator of aggregated name lists (a control character no identifier contains).
const SEP: char = '\u{1f}';

/// A table of the adopted schema.
#[derive(Debug, Clone)]
pub struct CatTable {
    /// Its name.
    pub name: String,
    /// Partitioned (`relkind = 'p'`).
    pub partitioned: bool,
    /// Its partitions (direct and nested), when partitioned.
    pub partitions: Vec<String>,
    /// Columns and their types, in order.
    pub columns: Vec<(String, String)>,
    /// The primary key's name and columns.
    pub primary_key: Option<(String, Vec<String>)>,
    /// Exact row count.
    pub rows: i64,
}

impl CatTable {
    /// The type of `column`, if the table has it.
    pub fn column_type(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t.as_str())
    }
}

/// A foreign key touching the adopted schema.
#[derive(Debug, Clone)]
pub struct CatForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing schema and table.
    pub schema: String,
    /// Referencing table.
    pub table: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced schema.
    pub ref_schema: String,
    /// Referenced table.
    pub ref_table: String,
    /// Referenced columns.
    pub ref_columns: Vec<String>,
    /// `confdeltype`: a, r, c, n, d.
    pub on_delete: String,
}

/// A UNIQUE constraint or unique index (not the primary key).
#[derive(Debug, Clone)]
pub struct CatUnique {
    /// The table.
    pub table: String,
    /// The index's name.
    pub index: String,
    /// The constraint's name, when it is a constraint.
    pub constraint: Option<String>,
    /// Each key column or expression as PostgreSQL prints it.
    pub keys: Vec<String>,
    /// The partial-index predicate.
    pub predicate: Option<String>,
}

/// A view or materialized view over tables of the schema.
#[derive(Debug, Clone)]
pub struct CatView {
    /// The view's schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Materialized.
    pub materialized: bool,
    /// The tables of the adopted schema it reads.
    pub reads: Vec<String>,
}

/// A function body (SECURITY DEFINER functions, trigger functions).
#[derive(Debug, Clone)]
pub struct CatFunction {
    /// `schema.name`.
    pub name: String,
    /// Its source text: for a SECURITY DEFINER function its whole definition
    /// (`pg_get_functiondef`, which also shows a SQL-standard `BEGIN ATOMIC` body, whose
    /// `prosrc` is empty); for a trigger function its `prosrc`.
    pub body: String,
    /// Its `prosrc` (the code itself, without the `CREATE FUNCTION` frame; empty for a
    /// SQL-standard body).
    pub source: String,
    /// The tables its body depends on, as `pg_depend` records them (SQL-standard bodies), as
    /// `schema.table`.
    pub depends: Vec<String>,
    /// The schemas of its own `SET search_path`, if it has one, lowercase, in order.
    pub search_path: Option<Vec<String>>,
    /// For a trigger: the table it fires on (and the trigger's name).
    pub trigger: Option<(String, String)>,
}

/// Everything the planner reads.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Whether the schema exists.
    pub schema_exists: bool,
    /// Whether Tenantry's tenancy core (`tenancy.tenants`) exists.
    pub has_core: bool,
    /// Ordinary and partitioned tables that are not partitions.
    pub tables: Vec<CatTable>,
    /// Foreign keys from or into the schema's tables.
    pub foreign_keys: Vec<CatForeignKey>,
    /// UNIQUE constraints and unique indexes.
    pub uniques: Vec<CatUnique>,
    /// Views over the schema's tables.
    pub views: Vec<CatView>,
    /// SECURITY DEFINER functions outside Tenantry's schema, and trigger functions of the
    /// schema's tables.
    pub functions: Vec<CatFunction>,
    /// The unqualified names of every function outside `pg_catalog`, `information_schema` and
    /// Tenantry's schema: a trigger function calling one may write through it.
    pub user_functions: Vec<String>,
    /// The names of the relations of `public` (where an unqualified name may resolve).
    pub public_relations: Vec<String>,
    /// `(table, sequence)`: the sequences behind serial and identity columns.
    pub sequences: Vec<(String, String)>,
    /// Whether the app role already has USAGE on the schema.
    pub app_has_usage: bool,
}

fn stmt(sql: &str, schema: &str) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, [schema.into()])
}

fn list(row: &QueryResult, index: usize) -> Result<Vec<String>, DbErr> {
    Ok(row
        .try_get_by_index::<Option<String>>(index)?
        .map(|s| s.split(SEP).map(str::to_owned).collect())
        .unwrap_or_default())
}

const COLS: &str = "(SELECT string_agg(a.attname, chr(31) ORDER BY k.ord) FROM unnest({keys}) WITH ORDINALITY k(attnum, ord) \
     JOIN pg_catalog.pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum)";

fn cols(keys: &str, rel: &str) -> String {
    COLS.replace("{keys}", keys).replace("{rel}", rel)
}

/// Reads the catalog of `schema`.
pub async fn read<C: ConnectionTrait>(db: &C, schema: &str) -> Result<Catalog, DbErr> {
    let mut cat = Catalog::default();
    let exists = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1), \
             to_regclass('tenancy.tenants') IS NOT NULL, \
             EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $2) \
               AND EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1) \
               AND has_schema_privilege($2, $1, 'USAGE')",
            [schema.into(), crate::names::APP_ROLE.into()],
        ))
        .await?;
    if let Some(r) = exists {
        cat.schema_exists = r.try_get_by_index(0)?;
        cat.has_core = r.try_get_by_index(1)?;
        cat.app_has_usage = r.try_get_by_index(2)?;
    }
    if !cat.schema_exists {
        return Ok(cat);
    }
    let tables = db
        .query_all_raw(stmt(
            &format!(
                "SELECT c.relname::text, c.relkind = 'p', \
                 (SELECT string_agg(p.relid::regclass::text, chr(31)) FROM pg_catalog.pg_partition_tree(c.oid) p WHERE p.level > 0 AND p.isleaf IS NOT NULL AND p.relid <> c.oid), \
                 (SELECT string_agg(a.attname || chr(30) || pg_catalog.format_type(a.atttypid, a.atttypmod), chr(31) ORDER BY a.attnum) \
                    FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), \
                 pk.conname::text, {} \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p' \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
                 AND c.oid IS DISTINCT FROM pg_catalog.to_regclass('seaql_migrations') ORDER BY c.relname",
                cols("pk.conkey", "c.oid")
            ),
            schema,
        ))
        .await?;
    for r in &tables {
        let name: String = r.try_get_by_index(0)?;
        let partitions = list(r, 2)?
            .into_iter()
            .map(|p| {
                p.rsplit('.')
                    .next()
                    .unwrap_or(&p)
                    .trim_matches('"')
                    .to_owned()
            })
            .collect();
        let columns = list(r, 3)?
            .into_iter()
            .filter_map(|c| {
                c.split_once('\u{1e}')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
            })
            .collect();
        let pk_name: Option<String> = r.try_get_by_index(4)?;
        let pk_cols = list(r, 5)?;
        let count = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT count(*) FROM {}",
                    crate::guards::quote_qualified(schema, &name)
                ),
            ))
            .await?
            .map(|r| r.try_get_by_index::<i64>(0))
            .transpose()?
            .unwrap_or(0);
        cat.tables.push(CatTable {
            name,
            partitioned: r.try_get_by_index(1)?,
            partitions,
            columns,
            primary_key: pk_name.map(|n| (n, pk_cols)),
            rows: count,
        });
    }
    let fks = db
        .query_all_raw(stmt(
            &format!(
                "SELECT con.conname::text, n.nspname::text, c.relname::text, {}, rn.nspname::text, rc.relname::text, {}, con.confdeltype::text \
                 FROM pg_catalog.pg_constraint con \
                 JOIN pg_catalog.pg_class c ON c.oid = con.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
                 WHERE con.contype = 'f' AND con.conparentid = 0 AND NOT c.relispartition \
                   AND (n.nspname = $1 OR rn.nspname = $1) ORDER BY c.relname, con.conname",
                cols("con.conkey", "con.conrelid"),
                cols("con.confkey", "con.confrelid")
            ),
            schema,
        ))
        .await?;
    for r in &fks {
        cat.foreign_keys.push(CatForeignKey {
            name: r.try_get_by_index(0)?,
            schema: r.try_get_by_index(1)?,
            table: r.try_get_by_index(2)?,
            columns: list(r, 3)?,
            ref_schema: r.try_get_by_index(4)?,
            ref_table: r.try_get_by_index(5)?,
            ref_columns: list(r, 6)?,
            on_delete: r.try_get_by_index(7)?,
        });
    }
    let uniques = db
        .query_all_raw(stmt(
            "SELECT c.relname::text, ic.relname::text, con.conname::text, \
             (SELECT string_agg(pg_catalog.pg_get_indexdef(i.indexrelid, k, true), chr(31) ORDER BY k) FROM generate_series(1, i.indnkeyatts) k), \
             pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) \
             FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u' \
             WHERE n.nspname = $1 AND i.indisunique AND NOT i.indisprimary AND NOT c.relispartition \
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid) \
             ORDER BY c.relname, ic.relname",
            schema,
        ))
        .await?;
    for r in &uniques {
        cat.uniques.push(CatUnique {
            table: r.try_get_by_index(0)?,
            index: r.try_get_by_index(1)?,
            constraint: r.try_get_by_index(2)?,
            keys: list(r, 3)?,
            predicate: r.try_get_by_index(4)?,
        });
    }
    let views = db
        .query_all_raw(stmt(
            "SELECT vn.nspname::text, v.relname::text, v.relkind = 'm', string_agg(DISTINCT t.relname, chr(31)) \
             FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid \
             JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace \
             JOIN pg_catalog.pg_class t ON t.oid = d.refobjid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
             WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND v.oid <> t.oid AND t.relkind IN ('r', 'p') AND tn.nspname = $1 \
             GROUP BY vn.nspname, v.relname, v.relkind ORDER BY 1, 2",
            schema,
        ))
        .await?;
    for r in &views {
        cat.views.push(CatView {
            schema: r.try_get_by_index(0)?,
            name: r.try_get_by_index(1)?,
            materialized: r.try_get_by_index(2)?,
            reads: list(r, 3)?,
        });
    }
    let functions = db
        .query_all_raw(stmt(
            "SELECT pn.nspname || '.' || p.proname, \
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END, \
               NULL::text, NULL::text, \
               (SELECT string_agg(DISTINCT tn.nspname || '.' || t.relname, chr(31)) FROM pg_catalog.pg_depend d \
                JOIN pg_catalog.pg_class t ON t.oid = d.refobjid \
                JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
                WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid \
                  AND d.refclassid = 'pg_catalog.pg_class'::regclass), \
               p.prosrc, \
               (SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%' LIMIT 1) \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE p.prosecdef AND pn.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy') \
             UNION ALL \
             SELECT pn.nspname || '.' || p.proname, p.prosrc, c.relname::text, tg.tgname::text, NULL::text, \
               p.prosrc, \
               (SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%' LIMIT 1) \
             FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE n.nspname = $1 AND NOT tg.tgisinternal",
            schema,
        ))
        .await?;
    for r in &functions {
        let table: Option<String> = r.try_get_by_index(2)?;
        let trigger: Option<String> = r.try_get_by_index(3)?;
        cat.functions.push(CatFunction {
            name: r.try_get_by_index(0)?,
            body: r.try_get_by_index(1)?,
            source: r.try_get_by_index(5)?,
            depends: list(r, 4)?,
            search_path: r
                .try_get_by_index::<Option<String>>(6)?
                .map(|p| search_path(&p)),
            trigger: table.zip(trigger),
        });
    }
    let user_functions = db
        .query_all_raw(stmt(
            "SELECT DISTINCT p.proname::text FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
             WHERE pn.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy') \
               AND pg_catalog.left(pn.nspname, 3) <> 'pg_' AND $1::text IS NOT NULL ORDER BY 1",
            schema,
        ))
        .await?;
    for r in &user_functions {
        cat.user_functions
            .push(r.try_get_by_index::<String>(0)?.to_lowercase());
    }
    let public_relations = db
        .query_all_raw(stmt(
            "SELECT c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND $1::text IS NOT NULL ORDER BY 1",
            schema,
        ))
        .await?;
    for r in &public_relations {
        cat.public_relations
            .push(r.try_get_by_index::<String>(0)?.to_lowercase());
    }
    let sequences = db
        .query_all_raw(stmt(
            "SELECT c.relname::text, s.relname::text FROM pg_catalog.pg_depend d \
             JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_catalog.pg_class c ON c.oid = d.refobjid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND d.deptype IN ('a', 'i') AND n.nspname = $1 ORDER BY 1, 2",
            schema,
        ))
        .await?;
    for r in &sequences {
        cat.sequences
            .push((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
    }
    Ok(cat)
}

/// The schemas of a `search_path` setting (`"$user", public` -> `["$user", "public"]`),
/// lowercase, quotes removed.
pub fn search_path(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The lowercase words of a function body (identifiers, schema-qualified names kept whole).
pub fn words(body: &str) -> Vec<String> {
    body.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '"'))
        .filter(|w| !w.is_empty())
        .map(|w| w.replace('"', "").to_lowercase())
        .collect()
}

/// `body` with its comments (`-- ...`, nested `/* ... */`) and string literals (`'...'`,
/// `E'...'`, `$tag$...$tag$`) replaced by spaces: what is left is code, so a keyword split by a
/// comment (`INSERT /* x */ INTO`) is seen and a keyword inside a string is not. Quoted
/// identifiers are kept.
pub fn strip_comments_and_strings(body: &str) -> String {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            out.push(' ');
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == '\'' {
            // `E'...'` allows backslash escapes; `''` is a quote in both forms.
            // Only when the `E` is a token of its own: in `name'\'` the `e` ends a type name
            // (a typed literal, no escapes).
            let escapes = i > 0
                && matches!(chars[i - 1], 'e' | 'E')
                && (i < 2 || !(chars[i - 2].is_alphanumeric() || chars[i - 2] == '_'));
            i += 1;
            while i < chars.len() {
                if escapes && chars[i] == '\\' {
                    i += 2;
                } else if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push_str(" '' ");
        } else if c == '"' {
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                i += 1;
                if chars[i - 1] == '"' {
                    break;
                }
            }
        } else if let Some(tag) = dollar_tag(&chars, i) {
            let tag: Vec<char> = tag.chars().collect();
            i += tag.len();
            while i < chars.len() && !chars[i..].starts_with(&tag) {
                i += 1;
            }
            i = (i + tag.len()).min(chars.len());
            out.push_str(" '' ");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The `$tag$` opening a dollar-quoted string at `i`, if one does (not `$1`, not inside a word).
fn dollar_tag(chars: &[char], i: usize) -> Option<String> {
    if chars[i] != '$' || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) {
        return None;
    }
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    let tag: String = chars[i..=j.min(chars.len() - 1)].iter().collect();
    let inner_ok = chars
        .get(i + 1)
        .is_some_and(|c| *c == '$' || c.is_alphabetic() || *c == '_');
    (j < chars.len() && chars[j] == '$' && inner_ok).then_some(tag)
}

/// The names called in `code` (a word directly followed by `(`, after optional spaces), lowercase
/// and unqualified.
pub fn calls(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut pending: Option<String> = None;
    for c in code.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '"' {
            pending = None;
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            pending = Some(std::mem::take(&mut word));
        }
        if c == '(' {
            if let Some(w) = pending.take() {
                out.push(base_name(&w.replace('"', "").to_lowercase()).to_owned());
            }
        } else if !c.is_whitespace() {
            pending = None;
        }
    }
    out
}

/// The unqualified name of a possibly schema-qualified word.
pub fn base_name(word: &str) -> &str {
    word.rsplit('.').next().unwrap_or(word)
}
