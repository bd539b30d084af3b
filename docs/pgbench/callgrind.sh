# Sourced by entry_instructions.sh and rls_instructions.sh (from the repository root, with W
# set to a scratch directory): a copy of the dev cluster's data, migrated, with 2,000 tenants
# (so a lookup by tenant is an index scan, as in production) and the app login granted its
# roles as `cargo xtask demo` would; `single`, a single-user backend on that copy; and
# `instructions`, what callgrind counts for one such backend reading "$W/in.sql". The dev
# cluster itself is only migrated: it is stopped to copy its data, and started again.
B="$(pg_config --bindir)"
T=00000000-0000-4000-8000-000000000007

cargo xtask db start >/dev/null
cargo run -q -p migration -- up >/dev/null 2>&1
cargo xtask db stop >/dev/null
rm -rf "$W"; mkdir -p "$W"
cp -a target/tenantry-dev/data "$W/data"
rm -f "$W/data/postmaster.pid"
chown -R postgres "$W"
cargo xtask db start >/dev/null

single() { runuser -u postgres -- "$B/postgres" --single -D "$W/data" -c shared_buffers=32MB tenantry; }

single >/dev/null 2>&1 <<SQL
INSERT INTO tenancy.tenants (id, name, slug) VALUES ('$T', 'probe', 'probe') ON CONFLICT DO NOTHING
INSERT INTO tenancy.tenants (name, slug) SELECT 'x' || g, 'x' || g FROM generate_series(1, 2000) g
ANALYZE tenancy.tenants
GRANT tenantry_app TO tenantry_app_login
GRANT tenantry_dedicated TO tenantry_app_login
SQL

# The instructions of one single-user backend reading "$W/in.sql" ($1: the variant, for errors).
instructions() {
  runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$W/cg.out" \
    "$B/postgres" --single -D "$W/data" -c shared_buffers=32MB tenantry <"$W/in.sql" >"$W/run.log" 2>&1
  if grep -q ERROR "$W/run.log"; then echo "$1:" >&2; grep -m1 ERROR "$W/run.log" >&2; exit 1; fi
  callgrind_annotate "$W/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
