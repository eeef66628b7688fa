-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- The vault and the data-key store are separate databases so that a dump of the vault
-- never carries the keys that decrypt it.
CREATE DATABASE gdpr_vault OWNER airflow;
CREATE DATABASE gdpr_keys OWNER airflow;
