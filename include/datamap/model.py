"""The data map: one YAML file per client store, saying where a person's data is and what erasure does.

A SQL store is a set of tables. A table is reached either by an identity column (an email, phone,
customer number or IP address column searched with the identities of a request) or by references to
tables already reached, in chains of any depth (customer, order, order line, ...). Key-value tables
(entity id, key, value) name the keys that hold personal data. Each personal column has a data
category; JSON columns are parsed, free-text columns are redacted of other people's details.

A server-log store is a directory of combined-format logs, searched by the IP addresses found.

docs/data-map.md documents the format with a worked example.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from include.identities import NORMALISERS
from include.yamlfiles import LoadedFile, load_yaml_dir, load_yaml_file

NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"  # a SQL identifier we quote ourselves
STORE_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"

IdentityKind = StrEnum("IdentityKind", {kind: kind for kind in NORMALISERS})


class ErasureAction(StrEnum):
    delete = "delete"  # the subject's rows go
    mask = "mask"  # the named columns are overwritten, the row stays (e.g. an order's totals)
    retain = "retain"  # kept under a named legal reason (Art. 17(3)), and restricted


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    category: str = Field(min_length=1, max_length=64)
    identity: IdentityKind | None = None  # searched with (and adds to) the request's identities
    json_value: bool = Field(default=False, alias="json")  # parsed into the package, not left as a string
    free_text: bool = False  # may mention other people: their details are redacted


class KeyValue(_Strict):
    key: str = Field(pattern=NAME)  # the column holding the key
    value: str = Field(pattern=NAME)  # the column holding the value
    personal_keys: dict[str, str] = Field(min_length=1)  # key -> data category; other keys are not personal
    identities: dict[str, IdentityKind] = {}  # key -> the identity its value is


class Erasure(_Strict):
    action: ErasureAction
    mask: dict[str, str | None] = {}  # column -> replacement (null for NULL)
    reason: str | None = Field(default=None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def _complete(self) -> Erasure:
        if self.action == ErasureAction.mask and not self.mask:
            raise ValueError("mask names no column to overwrite")
        if self.action != ErasureAction.mask and self.mask:
            raise ValueError(f"mask is only for action mask, not {self.action}")
        if self.action == ErasureAction.retain and not self.reason:
            raise ValueError("retain needs the legal reason the data is kept for")
        return self


class Table(_Strict):
    instruction: str = Field(min_length=1, max_length=64)  # the controller's instruction category for it
    primary_key: str = Field(pattern=NAME)
    references: dict[str, str] = {}  # column -> the table whose primary key it holds
    columns: dict[str, Column] = {}
    key_value: KeyValue | None = None
    erasure: Erasure
    # The column with the date a row relates to (an order's date): when a kept row's period ends.
    dated_by: str | None = Field(default=None, pattern=NAME)


class LogDirectory(_Strict):
    directory: str = Field(min_length=1)  # under GDPR_SERVER_LOG_ROOT
    pattern: str = "access.log*"
    instruction: str = Field(default="server_log", min_length=1, max_length=64)

    def path(self, log_root: Path) -> Path:
        return Path(log_root) / self.directory


class DataMap(_Strict):
    store: str = Field(pattern=STORE_ID)
    controller: str = Field(min_length=1, max_length=64)
    kind: Literal["sql", "server_logs"]
    description: str = ""
    connection: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$")  # an Airflow conn_id
    tables: dict[str, Table] = {}
    logs: LogDirectory | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> DataMap:
        if self.kind == "sql" and (not self.connection or not self.tables):
            raise ValueError("a sql store needs a connection and at least one table")
        if self.kind == "server_logs" and (self.logs is None or self.tables):
            raise ValueError("a server_logs store needs logs and no tables")
        return self

    def identity_columns(self, table: str) -> dict[str, IdentityKind]:
        return {name: column.identity for name, column in self.tables[table].columns.items() if column.identity}

    def dated_from(self, table: str) -> str | None:
        """The table whose dated_by dates `table`'s rows: itself, or the nearest it references."""
        if self.tables[table].dated_by:
            return table
        for target in self.tables[table].references.values():
            if (found := self.dated_from(target)) is not None:
                return found
        return None

    def children(self, table: str) -> list[tuple[str, str]]:
        """(child table, its column) for each reference to `table`."""
        return [(name, column) for name, spec in self.tables.items()
                for column, target in spec.references.items() if target == table]


def _check_references(loaded: LoadedFile[DataMap]) -> None:
    tables = loaded.content.tables
    for name, table in tables.items():
        where = ("tables", name)
        for column, target in table.references.items():
            if target not in tables:
                raise loaded.error((*where, "references", column),
                                   f"references table '{target}', which the map does not describe")
        for column in table.erasure.mask:
            if column not in table.columns:
                raise loaded.error((*where, "erasure", "mask", column),
                                   f"masks column '{column}', which is not among the table's columns")
        if table.key_value and table.key_value.identities.keys() - table.key_value.personal_keys.keys():
            key = sorted(table.key_value.identities.keys() - table.key_value.personal_keys.keys())[0]
            raise loaded.error((*where, "key_value", "identities", key), f"key '{key}' is not in personal_keys")
        if not table.references and not loaded.content.identity_columns(name):
            raise loaded.error(where, "is never reached: it has no identity column and references no table")
    for name in tables:
        _no_cycle(loaded, name, [])
    for name, table in tables.items():
        _erasure_consistent(loaded, name, table)


def _erasure_consistent(loaded: LoadedFile[DataMap], name: str, table: Table) -> None:
    """A kept row must not point at a deleted one, and a kept row must have a date its period runs from."""
    data_map = loaded.content
    if table.erasure.action == ErasureAction.delete:
        for child, column in data_map.children(name):
            if data_map.tables[child].erasure.action != ErasureAction.delete:
                raise loaded.error(("tables", name, "erasure", "action"),
                                   f"deletes rows that table '{child}' keeps ({data_map.tables[child].erasure.action}"
                                   f" through {child}.{column}): mask this table's personal columns instead")
    if table.erasure.action == ErasureAction.retain and data_map.dated_from(name) is None:
        raise loaded.error(("tables", name, "erasure"), "retain needs dated_by (the column with the date the "
                           "row relates to) on this table or on a table it references")


def _no_cycle(loaded: LoadedFile[DataMap], table: str, seen: list[str]) -> None:
    """A reference chain must end at a table reached by identity (a row that references a row of
    its own table would hand one person's rows to another)."""
    if table in seen:
        cycle = " -> ".join([*seen[seen.index(table):], table])
        raise loaded.error(("tables", seen[0], "references"), f"references form a cycle: {cycle}")
    for target in loaded.content.tables[table].references.values():
        _no_cycle(loaded, target, [*seen, table])


def load_data_map(path: Path) -> LoadedFile[DataMap]:
    """Parse and validate one store's map; InvalidInput names the file, the line and the field."""
    loaded = load_yaml_file(path, DataMap, "store, controller, kind and tables or logs")
    _check_references(loaded)
    return loaded


def load_data_maps(directory: Path) -> list[LoadedFile[DataMap]]:
    return load_yaml_dir(directory, load_data_map, what="data map", key="store")
