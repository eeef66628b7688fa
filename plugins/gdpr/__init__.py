"""Airflow adapters of the GDPR core: hooks, operators and assets, in the providers' layout."""
