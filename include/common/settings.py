"""Where the vault, its data-key store and the keyring live.

Read from GDPR_* environment variables (the CLI) or built from an Airflow connection (the hook).
The embedded default keeps everything under ./var of the project; production points the URLs at
PostgreSQL or MariaDB and the keyring at a secret.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from include.common.paths import (
    DEFAULT_DATAMAPS_DIR,
    DEFAULT_INSTRUCTIONS_DIR,
    DEFAULT_RECIPIENTS_FILE,
    DEFAULT_VAR_DIR,
)


class VaultSettings(BaseSettings):
    """Location of the vault database, the data-key store and the keyring."""

    # Errors never quote what was given: the keyring secret, or a URL's password, would be in them.
    model_config = SettingsConfigDict(env_prefix="GDPR_", extra="forbid", hide_input_in_errors=True)

    vault_url: str = Field(
        default=f"sqlite:///{DEFAULT_VAR_DIR / 'vault.db'}",
        description="SQLAlchemy URL of the vault database (records, audit log).",
    )
    keystore_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the data-key store. A separate database from the vault, so that "
            "copies of the vault never hold the keys; defaults to datakeys.db beside the keyring."
        ),
    )
    keyring_path: Path = Field(default=DEFAULT_VAR_DIR / "keyring" / "keyring.json")
    keyring_secret: str | None = Field(
        default=None,
        repr=False,
        description="The keyring's JSON itself (from a secrets backend); wins over keyring_path.",
    )

    @field_validator("vault_url", "keystore_url")
    @classmethod
    def _a_database_url(cls, value: str | None, info) -> str | None:
        from include.common.urls import parse_url  # SQLAlchemy loads only when settings are made

        if value is not None:
            parse_url(value, info.field_name)
        return value

    @model_validator(mode="after")
    def _default_keystore_beside_keyring(self) -> VaultSettings:
        from include.common.urls import same_database

        if self.keystore_url is None:
            self.keystore_url = f"sqlite:///{self.keyring_path.parent / 'datakeys.db'}"
        # The database each reaches, not the text: 127.0.0.1 and localhost, or a symlink and the
        # file it names, are one database.
        if shared := same_database(self.keystore_url, self.vault_url):
            raise ValueError(
                f"keystore_url must name a different database from vault_url: both reach {shared}, "
                "and a copy of the vault must never hold the data keys"
            )
        return self


class WorkflowSettings(BaseSettings):
    """Where the workflows find controllers' instructions and server logs, and write reports."""

    model_config = SettingsConfigDict(env_prefix="GDPR_", extra="ignore")

    instructions_dir: Path = Field(default=DEFAULT_INSTRUCTIONS_DIR,
                                   description="One YAML file of instructions per controller.")
    server_log_root: Path = Field(default=DEFAULT_VAR_DIR / "server-logs",
                                  description="Root of the controllers' server-log directories.")
    reports_dir: Path = Field(default=DEFAULT_VAR_DIR / "reports",
                              description="Where retention and other reports are written.")
    datamaps_dir: Path = Field(default=DEFAULT_DATAMAPS_DIR,
                               description="One YAML data map per client store.")
    outbox_dir: Path = Field(default=DEFAULT_VAR_DIR / "outbox",
                             description="Sealed access packages, one folder per controller, for delivery.")
    work_dir: Path = Field(default=DEFAULT_VAR_DIR / "work",
                           description="Requests' encrypted intermediate results between tasks.")
    recipients_file: Path = Field(default=DEFAULT_RECIPIENTS_FILE,
                                  description="The register of recipients (YAML).")
    disclosures_inbox: Path = Field(default=DEFAULT_VAR_DIR / "disclosures" / "inbox",
                                    description="Where other systems drop CSV files of routine disclosures.")
    privacy_mailbox: str | None = Field(
        default=None, description="The agency's privacy mailbox: the daily privacy digest of every controller goes "
                                  "there (and sends from it when the SMTP connection names no sender).")
    request_accountability_months: int = Field(
        default=12, ge=1, le=120,
        description="Months after a request closes until its key, and with it the identities it was made "
                    "with, is destroyed (the request's record stays).")
