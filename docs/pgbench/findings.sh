#!/usr/bin/env bash
# Reproduces two findings of docs/BENCHMARKS.md (scenario 1), on the fixture of run.sh:
#  1. The first statement after `SET LOCAL ROLE` from a superuser to a login under row level
#     security (a policy of our shape) costs more than the next one; after a switch to a BYPASSRLS role or back to the
#     superuser it does not (per-statement latencies, `pgbench -r`, one row read by uuid key, hot, a policy of our
#     shape).
#  2. A policy calling an inlinable SQL function (`tenant_id = app_tenant()`) costs every
#     planning the function's inlining; the same expression written into the policy does not
#     (`-M prepared` with custom plans forced, then generic plans: equal).
#  3. What the double filter costs on the server is the `Result` node that carries the policy's
#     one-time filter, not row level security: a tenant's 50 newest rows, timed inside the
#     server (a PL/pgSQL loop, each row fetched into a record), cost the same under the policy
#     alone as for the superuser, and the same with the policy and the statement's own
#     `tenant_id = $1` as for the superuser running both equalities itself.
# Usage: docs/pgbench/findings.sh  (as root; a throwaway cluster on port 5499 under /tmp/pgb)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fixture.sh"
as_pg "$B/psql" -h "$D" -p 5499 -q -v ON_ERROR_STOP=1 postgres <<'SQL'
CREATE ROLE byp LOGIN BYPASSRLS;
CREATE FUNCTION app_tenant() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT NULLIF(current_setting('app.tenant', true), '')::uuid $$;
CREATE TABLE acc_fn AS SELECT aid, tenant_id, abalance FROM pgbench_accounts WHERE aid <= 100000;
CREATE TABLE acc_expr AS SELECT * FROM acc_fn;
CREATE INDEX ON acc_fn (tenant_id); CREATE INDEX ON acc_expr (tenant_id);
ALTER TABLE acc_fn ENABLE ROW LEVEL SECURITY; ALTER TABLE acc_expr ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON acc_fn USING (tenant_id = app_tenant());
CREATE POLICY p ON acc_expr USING (tenant_id = NULLIF(current_setting('app.tenant', true), '')::uuid);
GRANT SELECT ON acc_fn, acc_expr TO app;
CREATE TABLE proj (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(),
  name text, created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tenant_id, id));
INSERT INTO proj (tenant_id, name) SELECT tenant_id, 'p' || aid FROM pgbench_accounts;
CREATE INDEX ON proj (id);
ALTER TABLE proj ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON proj USING (tenant_id = NULLIF(current_setting('app.tenant', true), '')::uuid);
GRANT SELECT ON proj TO app, byp;
VACUUM ANALYZE acc_fn, acc_expr, proj;
SQL
P="$(as_pg "$B/psql" -h "$D" -p 5499 -At -c "SELECT id FROM proj WHERE tenant_id = '$T' LIMIT 1" postgres)"
cat >"$D/switch.sql" <<SQL
BEGIN;
SET LOCAL app.tenant = '$T';
SET LOCAL ROLE app;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* app, first */;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* app, second */;
SET LOCAL ROLE byp;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* bypassrls, first */;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* bypassrls, second */;
RESET ROLE;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* superuser, first */;
SELECT * FROM proj WHERE tenant_id = :tid AND id = :pid /* superuser, second */;
END;
SQL
for t in acc_fn acc_expr; do echo "SELECT count(*) FROM $t WHERE tenant_id = :tid;" >"$D/$t.sql"; done
chmod a+r "$D"/*.sql
echo "1. per-statement latency (ms), first and second statement after each role switch:"
as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 10 -r -D tid="$T" -D pid="$P" -f "$D/switch.sql" postgres \
  | grep 'id = :pid' | sed 's/SELECT.*\/\* /  /; s/ \*\/;//'
echo "2. count of one tenant's rows, transactions per second (custom plans, then generic):"
for mode in force_custom_plan force_generic_plan; do
  for t in acc_fn acc_expr; do
    tps="$(PGOPTIONS="-c app.tenant=$T -c plan_cache_mode=$mode" as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 5 -U app -D tid="$T" -f "$D/$t.sql" postgres | awk '/^tps/ {print $3}')"
    echo "  $mode $t tps=$tps"
  done
done
echo "3. a tenant's 50 newest rows, server-side microseconds per execution (PL/pgSQL loop of 10,000 after 500 untimed):"
as_pg "$B/psql" -h "$D" -p 5499 -q -v ON_ERROR_STOP=1 postgres <<'SQL'
CREATE INDEX ON proj (tenant_id, created_at DESC);
ANALYZE proj;
CREATE FUNCTION newest(t uuid, n int, form text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE s timestamptz := clock_timestamp(); r record;
BEGIN
  FOR i IN 1..n LOOP
    IF form = 'where' THEN
      FOR r IN SELECT * FROM proj WHERE tenant_id = t ORDER BY created_at DESC LIMIT 50 LOOP END LOOP;
    ELSIF form = 'none' THEN
      FOR r IN SELECT * FROM proj ORDER BY created_at DESC LIMIT 50 LOOP END LOOP;
    ELSE
      FOR r IN SELECT * FROM proj WHERE tenant_id = t
          AND tenant_id = NULLIF(current_setting('app.tenant', true), '')::uuid
          ORDER BY created_at DESC LIMIT 50 LOOP END LOOP;
    END IF;
  END LOOP;
  RETURN round((extract(epoch FROM clock_timestamp() - s) * 1e6 / n)::numeric, 1);
END $$;
SQL
newest() { PGOPTIONS="-c app.tenant=$T" as_pg "$B/psql" -h "$D" -p 5499 -At -U "$1" -c "SELECT newest('$T', 500, '$2')" -c "SELECT newest('$T', 10000, '$2')" postgres | tail -1; }
for round in 1 2 3 4; do
  echo "  round $round: superuser, WHERE tenant_id = \$1: $(newest postgres where)"
  echo "  round $round: app, the policy alone: $(newest app none)"
  echo "  round $round: app, the policy + WHERE tenant_id = \$1 (a Result node): $(newest app where)"
  echo "  round $round: bypassrls, WHERE tenant_id = \$1: $(newest byp where)"
  echo "  round $round: superuser, both equalities written out (the same Result node): $(newest postgres both)"
done
