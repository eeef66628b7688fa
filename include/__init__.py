"""The domain core: encrypted vault, policies, requests, audit. Importable without Airflow."""
