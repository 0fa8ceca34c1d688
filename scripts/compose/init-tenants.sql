-- docker-compose.yml's fleet demo: Postgres runs this once, on an empty data directory.
-- A control database for Flotilla, the `test` database the test suite uses, and six tenant
-- databases owned by an application role whose password the workers alone know (TENANT_PW).
CREATE ROLE app LOGIN PASSWORD 'demo-tenant-pw';
CREATE DATABASE flotilla;
CREATE DATABASE tenant_acme OWNER app;
CREATE DATABASE tenant_beta OWNER app;
CREATE DATABASE tenant_gamma OWNER app;
CREATE DATABASE tenant_delta OWNER app;
CREATE DATABASE tenant_eps OWNER app;
CREATE DATABASE tenant_zeta OWNER app;
