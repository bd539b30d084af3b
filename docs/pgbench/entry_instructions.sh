#!/usr/bin/env bash
# What the schema entry costs the server, in instructions (docs/BENCHMARKS.md, scenario 2
# findings): counted by valgrind's callgrind in a single-user backend, so the numbers repeat
# whatever else the machine is doing (wall-clock timings on a shared host do not).
#
# Each variant is a tenant transaction's opening and its COMMIT, run 1 and 401 times as the app
# login (SET SESSION AUTHORIZATION, so `role` is `none` as on a pooled connection); the
# difference over 400 is the cost of one. The pieces are functions in a scratch schema of a
# copy of the dev cluster's data: the dev cluster itself is not changed.
#
# Usage: docs/pgbench/entry_instructions.sh   (as root, with valgrind installed; it starts the
# dev cluster with `cargo xtask db start`, applies the migrations, stops it to copy its data,
# and starts it again: docs/pgbench/callgrind.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=/tmp/tenantry-entry-cg
. docs/pgbench/callgrind.sh

# The pieces of the entry, as functions of their own.
single >/dev/null 2>&1 <<SQL
CREATE SCHEMA probe
GRANT USAGE ON SCHEMA probe TO tenantry_app
CREATE FUNCTION probe.empty() RETURNS void LANGUAGE plpgsql AS 'BEGIN END'
CREATE FUNCTION probe.lock() RETURNS void LANGUAGE plpgsql AS 'DECLARE done pg_catalog.text; BEGIN done := pg_catalog.pg_advisory_xact_lock_shared(1953329014, pg_catalog.hashtext(tenancy.current_tenant_id()::text)); END'
DO \$\$ BEGIN EXECUTE pg_catalog.format('CREATE FUNCTION probe.entry_function() RETURNS void LANGUAGE plpgsql AS %L', (SELECT prosrc FROM pg_catalog.pg_proc WHERE oid = 'tenancy.enter_tenant()'::regprocedure)); END \$\$
CREATE FUNCTION probe.lock_lookup() RETURNS void LANGUAGE plpgsql AS 'DECLARE s pg_catalog.text; done pg_catalog.text; BEGIN done := pg_catalog.pg_advisory_xact_lock_shared(1953329014, pg_catalog.hashtext(tenancy.current_tenant_id()::text)); SELECT t.schema_name INTO s FROM tenancy.tenants t WHERE t.id = tenancy.current_tenant_id() AND t.isolation = ''dedicated''; END'
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA probe TO tenantry_app
SQL

# The script of one variant: its opening $2 and COMMIT, $1 times, as the app login.
script() {
  echo "SET SESSION AUTHORIZATION tenantry_app_login"
  echo "SET search_path = public, pg_temp"
  for _ in $(seq 1 "$1"); do echo "$2"; echo "COMMIT"; done
}

# Instructions of one run of variant $1 ($2: its opening) repeated $3 times.
count() {
  script "$3" "$2" >"$W/in.sql"
  instructions "$1"
}

CTX="SET LOCAL tenantry.tenant_id = '$T'; SET LOCAL tenantry.user_id = ''"
OPEN="BEGIN ISOLATION LEVEL READ COMMITTED; $CTX"
printf '%-70s %12s\n' variant "instr/tx"
while IFS='|' read -r name opening; do
  one="$(count "$name" "$opening" 1)"
  many="$(count "$name" "$opening" 401)"
  printf '%-70s %12d\n' "$name" $(((many - one) / 400))
done <<EOF
by hand: BEGIN; SET LOCAL|BEGIN; SET LOCAL tenantry.tenant_id = '$T'
ours without the entry|$OPEN
ours + SELECT 1|$OPEN; SELECT 1
ours + an empty PL/pgSQL function|$OPEN; SELECT probe.empty()
ours + the move lock (PL/pgSQL)|$OPEN; SELECT probe.lock()
ours + the move lock and the tenant lookup|$OPEN; SELECT probe.lock_lookup()
ours before m0020: the entry as a function (SELECT; m0019's body)|$OPEN; SELECT probe.entry_function()
ours: the entry (CALL tenancy.enter_tenant(), m0020)|$OPEN; CALL tenancy.enter_tenant()
a binary of the release before m0020 (SELECT the function, which CALLs)|$OPEN; SELECT tenancy.enter_tenant_schema()
ours without the entry, + SET LOCAL role, search_path, row_security|$OPEN; SET LOCAL role = none; SET LOCAL search_path = public, pg_temp; SET LOCAL row_security = on
the opening before 2026-12-03 (SET TRANSACTION, BEGIN last)|SET TRANSACTION ISOLATION LEVEL READ COMMITTED; $CTX; SELECT probe.entry_function(); BEGIN
EOF
