#!/usr/bin/env bash
# Reproduces two findings of docs/BENCHMARKS.md (scenario 1), on the fixture of run.sh:
#  1. The first statement after `SET LOCAL ROLE` from a superuser to a login under row level
#     security costs more than the next one; after a switch to a BYPASSRLS role or back to the
#     superuser it does not (per-statement latencies, `pgbench -r`, one row read by key, hot).
#  2. A policy calling an inlinable SQL function (`tenant_id = app_tenant()`) costs every
#     planning the function's inlining; the same expression written into the policy does not
#     (`-M prepared` with custom plans forced, then generic plans: equal).
# Usage: docs/pgbench/findings.sh  (as root; a throwaway cluster on port 5499 under /tmp/pgb)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fixture.sh"
as_pg "$B/psql" -h "$D" -p 5499 -q -v ON_ERROR_STOP=1 postgres <<'SQL'
CREATE ROLE byp LOGIN BYPASSRLS;
GRANT SELECT ON pgbench_accounts TO byp;
CREATE FUNCTION app_tenant() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT NULLIF(current_setting('app.tenant', true), '')::uuid $$;
CREATE TABLE acc_fn AS SELECT aid, tenant_id, abalance FROM pgbench_accounts WHERE aid <= 100000;
CREATE TABLE acc_expr AS SELECT * FROM acc_fn;
CREATE INDEX ON acc_fn (tenant_id); CREATE INDEX ON acc_expr (tenant_id);
ALTER TABLE acc_fn ENABLE ROW LEVEL SECURITY; ALTER TABLE acc_expr ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON acc_fn USING (tenant_id = app_tenant());
CREATE POLICY p ON acc_expr USING (tenant_id = NULLIF(current_setting('app.tenant', true), '')::uuid);
GRANT SELECT ON acc_fn, acc_expr TO app;
VACUUM ANALYZE acc_fn, acc_expr;
SQL
cat >"$D/switch.sql" <<SQL
BEGIN;
SET LOCAL app.tenant = '$T';
SET LOCAL ROLE app;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* app, first */;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* app, second */;
SET LOCAL ROLE byp;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* bypassrls, first */;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* bypassrls, second */;
RESET ROLE;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* superuser, first */;
SELECT abalance FROM pgbench_accounts WHERE tenant_id = :tid AND aid = 7007 /* superuser, second */;
END;
SQL
for t in acc_fn acc_expr; do echo "SELECT count(*) FROM $t WHERE tenant_id = :tid;" >"$D/$t.sql"; done
chmod a+r "$D"/*.sql
echo "1. per-statement latency (ms), first and second statement after each role switch:"
as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 10 -r -D tid="$T" -f "$D/switch.sql" postgres \
  | grep 'aid = 7007' | sed 's/SELECT.*\/\* /  /; s/ \*\/;//'
echo "2. count of one tenant's rows, transactions per second (custom plans, then generic):"
for mode in force_custom_plan force_generic_plan; do
  for t in acc_fn acc_expr; do
    tps="$(PGOPTIONS="-c app.tenant=$T -c plan_cache_mode=$mode" as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 5 -U app -D tid="$T" -f "$D/$t.sql" postgres | awk '/^tps/ {print $3}')"
    echo "  $mode $t tps=$tps"
  done
done
