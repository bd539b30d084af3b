-- The fixture of the protocol measurement in docs/BENCHMARKS.md (scenario 2 findings): after
-- `pgbench -i -s 10` (1,000,000 accounts), give every account one of 1,000 tenants and put a
-- policy of our shape on the table. Run as a superuser; `run.sh` does all of it.
CREATE TABLE tenants (n int PRIMARY KEY, id uuid NOT NULL);
INSERT INTO tenants SELECT g, gen_random_uuid() FROM generate_series(0, 999) g;
ALTER TABLE pgbench_accounts ADD COLUMN tenant_id uuid;
UPDATE pgbench_accounts a SET tenant_id = t.id FROM tenants t WHERE t.n = a.aid % 1000;
ALTER TABLE pgbench_accounts ALTER COLUMN tenant_id SET NOT NULL;
CREATE INDEX acc_t_aid ON pgbench_accounts (tenant_id, aid);
ALTER TABLE pgbench_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgbench_accounts FORCE ROW LEVEL SECURITY;
CREATE ROLE app LOGIN;
GRANT SELECT ON pgbench_accounts, tenants TO app;
CREATE POLICY p ON pgbench_accounts USING (tenant_id = current_setting('app.tenant')::uuid);
VACUUM ANALYZE;
