"""The project as an Airflow provider: its connection types and their fields, for Airflow's
connection form (found through the `apache_airflow_provider` entry point in pyproject.toml).

Plain data, read by Airflow without importing the hooks; the hooks themselves live in plugins/gdpr.
"""

from importlib.metadata import version

PACKAGE = "gdpr-processor-workflows"
VAULT_CONNECTION = "gdpr-vault"
CLIENT_STORE_CONNECTION = "gdpr-client-store"

_URL = {"type": ["string", "null"], "format": "password"}  # a URL may hold a password: masked


def get_provider_info() -> dict:
    return {
        "package-name": PACKAGE,
        "name": "GDPR processor workflows",
        "description": "The vault of personal data and the client stores the data maps reach.",
        "versions": [version(PACKAGE)],
        "connection-types": [
            {
                "connection-type": VAULT_CONNECTION,
                "hook-class-name": "gdpr.hooks.vault.VaultHook",
                "hook-name": "GDPR vault",
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "login", "port"],
                    "relabeling": {"password": "Keyring (JSON secret; leave empty to use the keyring path)"},
                },
                "conn-fields": {
                    "database_url": {"label": "Vault database URL", "schema": _URL,
                                     "description": "SQLAlchemy URL of the vault (records, audit log)."},
                    "keystore_url": {"label": "Key store URL", "schema": _URL,
                                     "description": "SQLAlchemy URL of the data keys: another database."},
                    "keyring_path": {"label": "Keyring path", "schema": {"type": ["string", "null"]},
                                     "description": "The keyring file, when the password holds no keyring."},
                },
            },
            {
                "connection-type": CLIENT_STORE_CONNECTION,
                "hook-class-name": "gdpr.hooks.store.ClientStoreHook",
                "hook-name": "GDPR client store",
                "ui-field-behaviour": {"hidden-fields": [], "relabeling": {"schema": "Database"}},
                "conn-fields": {
                    "sqlalchemy_url": {"label": "SQLAlchemy URL", "schema": _URL,
                                       "description": "Instead of host, login and database: the store's full "
                                                      "URL (SQLite, or any SQLAlchemy dialect)."},
                },
            },
        ],
    }
