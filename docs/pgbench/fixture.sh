# Sourced by run.sh and findings.sh: a throwaway cluster on port 5499 under /tmp/pgb (stopped
# when the script exits), `pgbench -i -s 10` (1,000,000 accounts), setup.sql's tenants and
# policy; sets B (the server binaries), D (the directory), as_pg and T (tenant 7's id).
B="$(pg_config --bindir)"; D=/tmp/pgb
as_pg() { runuser -u postgres -- "$@"; }
rm -rf "$D"; mkdir -p "$D"; chown postgres "$D"
as_pg "$B/initdb" -D "$D/data" -A trust >/dev/null
as_pg "$B/pg_ctl" -D "$D/data" -o "-p 5499 -k $D -c shared_buffers=512MB" -l "$D/log" -w start >/dev/null
trap 'as_pg "$B/pg_ctl" -D "$D/data" stop -m fast >/dev/null' EXIT
as_pg "$B/pgbench" -h "$D" -p 5499 -i -s 10 -q postgres >/dev/null 2>&1
as_pg "$B/psql" -h "$D" -p 5499 -q -v ON_ERROR_STOP=1 postgres <"$here/setup.sql"
T="$(as_pg "$B/psql" -h "$D" -p 5499 -At -c 'SELECT id FROM tenants WHERE n = 7' postgres)"
