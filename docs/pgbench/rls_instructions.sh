#!/usr/bin/env bash
# What row level security and the service's own `WHERE tenant_id = $1` cost the server per
# execution of scenario 1's three statements (docs/BENCHMARKS.md, Findings 1), in
# instructions: counted by valgrind's callgrind in a single-user backend, so the numbers repeat
# whatever else the machine is doing.
#
# Each variant prepares its statement in a transaction with `SET LOCAL tenantry.tenant_id`, as
# the superuser, as a BYPASSRLS member of tenantry_app, or as the app login (SET SESSION
# AUTHORIZATION), and executes it 21 and 421 times; the difference over 400 is the cost of one
# execution (the plan cache's choice included: generic plans for (a) and (b), custom plans,
# planned every time, for (c)). The data: 50 projects for each of the 2,001 tenants of a copy
# of the dev cluster's data (docs/pgbench/callgrind.sh), so (a) returns 50 rows and (c) counts
# 50, where scenario 1 has 1,000 per tenant.
#
# Usage: docs/pgbench/rls_instructions.sh   (as root, with valgrind installed)
set -euo pipefail
cd "$(dirname "$0")/../.."
W=/tmp/tenantry-rls-cg
. docs/pgbench/callgrind.sh

single >/dev/null 2>&1 <<SQL
INSERT INTO public.projects (tenant_id, name) SELECT t.id, 'p' || g FROM tenancy.tenants t, generate_series(1, 50) g
VACUUM ANALYZE public.projects
CREATE ROLE probe_bypassrls NOLOGIN BYPASSRLS
GRANT tenantry_app TO probe_bypassrls
SQL
P="$(echo "SELECT id FROM public.projects WHERE tenant_id = '$T' LIMIT 1" | single 2>/dev/null |
  sed -n 's/.*1: id = "\([^"]*\)".*/\1/p' | head -1)"

# The script of one variant: $2 (who runs it), the statement prepared ($3), executed $1 times ($4).
script() {
  echo "$2"
  echo "BEGIN"
  echo "SET LOCAL tenantry.tenant_id = '$T'"
  echo "$3"
  for _ in $(seq 1 "$1"); do echo "$4"; done
  echo "COMMIT"
}

SU="SET search_path = public, pg_temp"
BYP="SET SESSION AUTHORIZATION probe_bypassrls"
APP="SET SESSION AUTHORIZATION tenantry_app_login"
A_WHERE="PREPARE q(uuid) AS SELECT * FROM public.projects WHERE tenant_id = \$1 ORDER BY created_at DESC LIMIT 50|EXECUTE q('$T')"
A_POLICY="PREPARE q AS SELECT * FROM public.projects ORDER BY created_at DESC LIMIT 50|EXECUTE q"
B_WHERE="PREPARE q(uuid, uuid) AS SELECT * FROM public.projects WHERE tenant_id = \$1 AND id = \$2|EXECUTE q('$T', '$P')"
B_POLICY="PREPARE q(uuid) AS SELECT * FROM public.projects WHERE id = \$1|EXECUTE q('$P')"
C_WHERE="PREPARE q(uuid) AS SELECT count(*) FROM public.projects WHERE tenant_id = \$1|EXECUTE q('$T')"
C_POLICY="PREPARE q AS SELECT count(*) FROM public.projects|EXECUTE q"

printf '%-62s %12s\n' variant "instr/exec"
while IFS='|' read -r name who prepare execute; do
  script 21 "$who" "$prepare" "$execute" >"$W/in.sql"
  one="$(instructions "$name")"
  script 421 "$who" "$prepare" "$execute" >"$W/in.sql"
  many="$(instructions "$name")"
  printf '%-62s %12d\n' "$name" $(((many - one) / 400))
done <<EOF
(a) superuser, WHERE tenant_id|$SU|$A_WHERE
(a) BYPASSRLS member of tenantry_app, WHERE tenant_id|$BYP|$A_WHERE
(a) app login: the policy only|$APP|$A_POLICY
(a) app login: the policy + WHERE tenant_id|$APP|$A_WHERE
(b) superuser, WHERE tenant_id AND id|$SU|$B_WHERE
(b) BYPASSRLS member of tenantry_app, WHERE tenant_id AND id|$BYP|$B_WHERE
(b) app login: the policy only (WHERE id)|$APP|$B_POLICY
(b) app login: the policy + WHERE tenant_id AND id|$APP|$B_WHERE
(c) superuser, WHERE tenant_id|$SU|$C_WHERE
(c) BYPASSRLS member of tenantry_app, WHERE tenant_id|$BYP|$C_WHERE
(c) app login: the policy only|$APP|$C_POLICY
(c) app login: the policy + WHERE tenant_id|$APP|$C_WHERE
EOF
