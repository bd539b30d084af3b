#!/usr/bin/env bash
# Reproduces the protocol measurement in docs/BENCHMARKS.md (scenario 2 findings): the plain
# lookup (a) against the tenant transaction in three round trips (b), in one pipeline with
# BEGIN/COMMIT (c) and in one pipeline without them (d), `-M prepared`, 1 and 8 clients.
# Usage: docs/pgbench/run.sh  (as root; starts a throwaway cluster on port 5499 under /tmp/pgb)
set -euo pipefail
B="$(pg_config --bindir)"; D=/tmp/pgb; here="$(cd "$(dirname "$0")" && pwd)"
as_pg() { runuser -u postgres -- "$@"; }
rm -rf "$D"; mkdir -p "$D"; chown postgres "$D"
as_pg "$B/initdb" -D "$D/data" -A trust >/dev/null
as_pg "$B/pg_ctl" -D "$D/data" -o "-p 5499 -k $D -c shared_buffers=512MB" -l "$D/log" -w start >/dev/null
trap 'as_pg "$B/pg_ctl" -D "$D/data" stop -m fast >/dev/null' EXIT
as_pg "$B/pgbench" -h "$D" -p 5499 -i -s 10 -q postgres >/dev/null 2>&1
as_pg "$B/psql" -h "$D" -p 5499 -q -v ON_ERROR_STOP=1 postgres <"$here/setup.sql"
T="$(as_pg "$B/psql" -h "$D" -p 5499 -At -c 'SELECT id FROM tenants WHERE n = 7' postgres)"
for s in a b c d; do sed "s/@TENANT@/$T/g" "$here/$s.sql" >"$D/$s.sql"; done
chmod a+r "$D"/*.sql
for c in 1 8; do
  for s in a b c d; do
    u=app; [ "$s" = a ] && u=postgres  # the baseline: no policy (a superuser bypasses RLS)
    tps="$(as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 5 -c "$c" -j 2 -U "$u" -f "$D/$s.sql" postgres | awk '/^tps/ {print $3}')"
    echo "clients=$c script=$s tps=$tps"
  done
done
