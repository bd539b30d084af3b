\set aid 7+1000*random(0,999)
\startpipeline
SELECT set_config('app.tenant', '@TENANT@', true);
SELECT abalance FROM pgbench_accounts WHERE tenant_id = '@TENANT@' AND aid = :aid;
\endpipeline
