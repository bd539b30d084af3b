\set aid 7+1000*random(0,999)
SELECT abalance FROM pgbench_accounts WHERE tenant_id = '@TENANT@' AND aid = :aid;
