#!/usr/bin/env bash
# Reproduces the protocol measurement in docs/BENCHMARKS.md (scenario 2 findings): the plain
# lookup (a) against the tenant transaction in three round trips (b), in one pipeline with
# BEGIN/COMMIT (c) and in one pipeline without them (d), `-M prepared`, 1 and 8 clients.
# Usage: docs/pgbench/run.sh  (as root; starts a throwaway cluster on port 5499 under /tmp/pgb)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fixture.sh"
for s in a b c d; do sed "s/@TENANT@/$T/g" "$here/$s.sql" >"$D/$s.sql"; done
chmod a+r "$D"/*.sql
for c in 1 8; do
  for s in a b c d; do
    u=app; [ "$s" = a ] && u=postgres  # the baseline: no policy (a superuser bypasses RLS)
    tps="$(as_pg "$B/pgbench" -h "$D" -p 5499 -n -M prepared -T 5 -c "$c" -j 2 -U "$u" -f "$D/$s.sql" postgres | awk '/^tps/ {print $3}')"
    echo "clients=$c script=$s tps=$tps"
  done
done
