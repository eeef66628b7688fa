"""A client's SQL database (PostgreSQL, MariaDB/MySQL, SQLite) described by a data map.

Finding a person is a resolution of ownership, not a closure over every value found:
1. Each identity is compared in its normal form on every backend (an email trimmed and folded to
   lower case; a phone in its spellings; see `SqlStore.equals`), and each row the database returns
   is checked again in Python: a row the collation matched but the normal form does not is no match.
2. A row's owner is the row its owner references lead up to (an order's account), or itself.
3. The rows an identity of the request matches are the person's, with their owners, every row those
   owners own (down the references, and up them to the owner), unless the owner holds another
   email or customer number: then the row is someone else's and is held back.
4. Values found in the person's rows (their account's phone, their order's IP address) are checked
   before they are used: if a row of another owner holds the value too, it is shared; the rows it
   reaches are held back as possible matches, with the reason, and never acted on.
Chains are followed to any depth, self-references included, up to MAX_DEPTH; a search that reaches
more than MAX_ROWS rows stops with an error rather than guess.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, MetaData, Select, Table, and_, delete, func, inspect, or_, select, text, update
from sqlalchemy.exc import SAWarning

from include.common.database import database_errors
from include.common.errors import InvalidInput
from include.common.identities import NORMALISERS
from include.common.yamlfiles import LoadedFile
from include.datamap.model import Condition, DataMap, ErasureAction, KeyValue, Replacement, template_fields
from include.stores.base import (
    IN_CHUNK,
    Acting,
    Done,
    FoundRecord,
    Kept,
    Outcome,
    Plan,
    PossibleMatch,
    Store,
    StoreResult,
)
from include.stores.identities import STRONG_KINDS, IdentitySet, Standing, another_person
from include.stores.redaction import full_names
from include.vault.keystore import chunks

MAX_DEPTH = 32  # references followed up from one row
MAX_ROWS = 200_000  # rows one search may reach
ERASED = "[erased]"

Ref = tuple[str, Any]  # (table, primary key)


def _normal(kind: str, value: object) -> str | None:
    try:
        return NORMALISERS[kind](value) if value is not None else None
    except InvalidInput:
        return None


def _plain(value: Any) -> Any:
    """A store's value as JSON can hold it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _like_prefix(value: str) -> str:
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _where(condition: Condition | None, table: Table):
    """A `when` as SQL (true without one)."""
    if condition is None:
        return and_(True)
    return and_(*(table.c[column].in_(values) for column, values in condition.columns.items()))


def _render(replacement: Replacement, row: dict) -> Replacement:
    """A mask's value for one row: a template's {column}s filled from the row."""
    if not isinstance(replacement, str) or not template_fields(replacement):
        return replacement
    return replacement.format_map({k: "" if v is None else v for k, v in row.items()})


class TableStep(Plan):
    table: str
    action: ErasureAction
    rule: int = 0  # the table's row rule (1-based) whose erasure applies; 0 for the table's own
    keys: list[Any]


class Scrub(Plan):
    table: str
    column: str
    keys: list[Any]


class SqlErasurePlan(Plan):
    steps: list[TableStep]
    kept: list[Kept]
    identities: list[dict]
    mentions: list[str]
    scrub: list[Scrub]
    held: list[PossibleMatch]


class Change(Plan):
    table: str
    column: str
    kind: str
    keys: list[Any]


class SqlRectificationPlan(Plan):
    changes: list[Change]
    held: list[PossibleMatch]


class SqlStore(Store[SqlErasurePlan, SqlRectificationPlan]):
    """One SQL store described by a data map, reached through a SQLAlchemy engine."""

    kind = "sql"
    erasure_plan_type = SqlErasurePlan
    rectification_plan_type = SqlRectificationPlan

    def __init__(self, loaded: LoadedFile[DataMap], engine: Engine) -> None:
        if loaded.content.kind != "sql":
            raise InvalidInput(f"{loaded.path}: store '{loaded.content.store}' is not a sql store")
        self.loaded = loaded
        self.map = loaded.content
        self.id = self.map.store
        self.engine = engine
        self.tables: dict[str, Table] = {}
        self._selects: dict[str, Select] = {}  # per table, made once when the store is reflected

    # -- the store's schema --------------------------------------------------------------------

    def needed_columns(self, name: str) -> dict[str, tuple]:
        """Every column the map names for a table -> where in the map it is named."""
        spec = self.map.tables[name]
        needed = {spec.primary_key: ("primary_key",), **{c: ("references", c) for c in spec.references},
                  **{c: ("columns", c) for c in spec.columns},
                  **{c: ("when",) for c in spec.condition_columns()},
                  **({spec.dated_by: ("dated_by",)} if spec.dated_by else {})}
        if spec.key_value:
            needed |= {spec.key_value.key: ("key_value", "key"), spec.key_value.value: ("key_value", "value")}
        for erasure_path, erasure in zip(self._erasure_paths(name), spec.erasures(), strict=True):
            for column, replacement in erasure.mask.items():
                needed |= {field: (*erasure_path, "mask", column) for field in template_fields(replacement)}
                if not spec.key_value:
                    needed.setdefault(column, (*erasure_path, "mask", column))
        return needed

    def _erasure_paths(self, name: str) -> list[tuple]:
        spec = self.map.tables[name]
        return [("erasure",), *(("rows", i, "erasure") for i, rule in enumerate(spec.rows) if rule.erasure)]

    def reflect(self) -> None:
        """The map's tables as the store has them; a table or column the store lacks is named with
        the map's file and line."""
        if self.tables:
            return
        problems = self.schema_problems()
        if problems:
            raise problems[0]
        metadata = MetaData()
        with warnings.catch_warnings():  # the search indexes on expressions are the backend's to use
            warnings.simplefilter("ignore", SAWarning)
            self.tables = {name: Table(name, metadata, autoload_with=self.engine) for name in self.map.tables}
        self._selects = {name: select(*(table.c[c] for c in self.needed_columns(name)))
                         .where(_where(self.map.tables[name].scope, table)) for name, table in self.tables.items()}

    def schema_problems(self) -> list[InvalidInput]:
        """Each table or column of the map the store lacks."""
        inspector = inspect(self.engine)
        existing = set(inspector.get_table_names())
        problems = []
        for name in self.map.tables:
            if name not in existing:
                problems.append(self.loaded.error(("tables", name), f"table '{name}' is not in store '{self.id}'"))
                continue
            columns = {c["name"] for c in inspector.get_columns(name)}
            for column, where in self.needed_columns(name).items():
                if column not in columns:
                    problems.append(self.loaded.error(("tables", name, *where), f"column '{column}' is not in "
                                                                                f"table '{name}' of store '{self.id}'"))
        return problems

    def test_connection(self) -> None:
        with database_errors(f"store '{self.id}'", "reached"), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def select(self, name: str):
        """The table's mapped columns, of its rows in the map's scope."""
        return self._selects[name]

    def equals(self, column, kind: str, value: str, forms: list[str]):
        """Rows whose column holds the identity, as the backend can find them by index.

        Emails and customer numbers are compared trimmed and case-folded: on PostgreSQL and SQLite as
        lower(trim(column)) (an expression index on it serves); on MariaDB/MySQL the column's
        case-insensitive collation folds case through its plain index, and rows written with a
        leading space are a short index range of their own. Phones and IP addresses are matched in
        their spellings. `datamap validate --live` checks the index each needs.
        """
        if kind not in STRONG_KINDS:
            return column.in_(forms)
        fold = func.lower if kind == "email" else func.upper
        normal = fold(func.trim(column)) == value
        if self.engine.dialect.name in ("mysql", "mariadb"):
            return or_(column == value, column.like(_like_prefix(value) + " %", escape="/"),
                       and_(column.like(" %"), normal))
        return normal

    def key_of(self, name: str, raw: Any) -> Any:
        """A primary key as the table holds it (a key-value table holds references as text)."""
        column = self.tables[name].c[self.map.tables[name].primary_key]
        try:
            if column.type.python_type is int and not isinstance(raw, int):
                return int(str(raw).strip())
        except (ValueError, NotImplementedError):
            return None
        return raw

    # -- searching -----------------------------------------------------------------------------

    def resolve(self, identities: IdentitySet) -> Resolution:
        with database_errors(f"store '{self.id}'", "searched"):
            self.reflect()
            with self.engine.connect() as conn:
                resolution = Resolution(self, conn, identities)
                resolution.run()
        return resolution

    def search(self, identities: IdentitySet) -> StoreResult:
        resolution = self.resolve(identities)
        result = StoreResult(self.id, self.kind, identities=resolution.known, held=resolution.possible_matches())
        for ref in sorted(resolution.mine, key=lambda r: (r[0], str(r[1]))):
            row = resolution.rows[ref]
            if (data := self.personal(ref[0], row)) is not None:
                spec = self.map.tables[ref[0]]
                index, rule = spec.rule(row)
                section = (rule.label or f"rows of kind {index}") if rule else None
                result.records.append(FoundRecord(self.id, ref[0], str(ref[1]), data, resolution.mine[ref],
                                                  section, spec.instruction_of(row)))
        return result

    def personal(self, name: str, row: dict) -> dict | None:
        """The row as the package shows it; None for a key-value row whose key is not personal."""
        spec = self.map.tables[name]
        data = {spec.primary_key: _plain(row[spec.primary_key])}
        data |= {column: _plain(row[column]) for column in spec.references}
        for column, col in spec.columns.items():
            value = row[column]
            if col.json_value and isinstance(value, str):
                with contextlib.suppress(ValueError):  # shown as stored
                    value = json.loads(value)
            data[column] = value if col.json_value else _plain(value)
        if spec.key_value:
            key = row[spec.key_value.key]
            if key not in spec.key_value.personal_keys:
                return None
            data |= {spec.key_value.key: key, spec.key_value.value: _plain(row[spec.key_value.value]),
                     "category": spec.key_value.personal_keys[key]}
        return data

    # -- erasure -------------------------------------------------------------------------------

    def _instructions(self, resolution: Resolution, acting: Acting) -> dict[Ref, Any]:
        """The controller's instruction for each of the person's rows (refused if none covers it)."""
        found = {}
        for ref in resolution.mine:
            category = self.map.tables[ref[0]].instruction_of(resolution.rows[ref])
            found[ref] = acting.instructions().require(acting.controller_id, category, acting.at,
                                                       where=f"{self.loaded.path}: table {ref[0]}: ")
        return found

    def plan_erasure(self, identities: IdentitySet, acting: Acting) -> SqlErasurePlan:
        resolution = self.resolve(identities)
        instructions = self._instructions(resolution, acting)
        steps: dict[tuple[str, int], TableStep] = {}
        kept = []
        for ref in sorted(resolution.personal_rows(), key=lambda r: (r[0], str(r[1]))):
            spec, row = self.map.tables[ref[0]], resolution.rows[ref]
            index, _ = spec.rule(row)
            erasure = spec.erasure_of(row)
            step = steps.setdefault((ref[0], index), TableStep(table=ref[0], action=erasure.action, rule=index,
                                                               keys=[]))
            step.keys.append(ref[1])
            if erasure.action == ErasureAction.retain:
                day = resolution.dated(ref)
                instruction = instructions[ref]
                until = instruction.retention.end_of_day(day, instruction.year_end) if day else None
                assert erasure.reason is not None  # the map's validation requires retain's reason
                kept.append(Kept(table=ref[0], key=str(ref[1]), reason=erasure.reason,
                                 until=until.isoformat() if until else None))
        mentions = resolution.mentions()
        return SqlErasurePlan(steps=list(steps.values()), kept=kept, identities=resolution.known.to_json(),
                              mentions=mentions, scrub=self._mentioned_in_free_text(resolution, mentions, steps),
                              held=resolution.possible_matches())

    def _mentioned_in_free_text(self, resolution: Resolution, mentions: list[str],
                                steps: dict[tuple[str, int], TableStep]) -> list[Scrub]:
        """Free text of rows that mention the person's own email or phone (a note that gives them),
        other than rows the erasure overwrites anyway or holds back: a scan of those columns, which
        only an erasure pays for."""
        contacts = [m for m in mentions if "@" in m or re.fullmatch(r"[+\d][\d ()-]{6,}", m)]
        scrub: list[Scrub] = []
        if not contacts:
            return scrub
        with database_errors(f"store '{self.id}'", "searched"), self.engine.connect() as conn:
            for name, spec in self.map.tables.items():
                table = self.tables[name]
                for column, col in spec.columns.items():
                    if not col.free_text:
                        continue
                    overwritten = {key for step in steps.values() if step.table == name and (
                        step.action == ErasureAction.delete or column in self.erasure_of(step).mask)
                        for key in step.keys}
                    keys = [key for part in chunks(contacts, IN_CHUNK) for key in conn.execute(
                        select(table.c[spec.primary_key]).where(_where(spec.scope, table), or_(
                            *(table.c[column].icontains(m, autoescape=True) for m in part)))).scalars()
                        if key not in overwritten and (name, key) not in resolution.held]
                    if keys:
                        scrub.append(Scrub(table=name, column=column, keys=sorted(set(keys), key=str)))
        return scrub

    def apply_erasure(self, plan: SqlErasurePlan, acting: Acting) -> Outcome:
        """Apply the plan in one transaction: masks, then deletions from the last table referenced."""
        done = []
        order = self.children_first()
        with database_errors(f"store '{self.id}'", "changed",
                             advice=". `gdpr-admin datamap validate --live` names masks that break UNIQUE columns"):
            self.reflect()
            with self.engine.begin() as conn:
                for step in sorted(plan.steps, key=lambda s: (order.index(s.table), s.rule)):
                    erasure = self.erasure_of(step)
                    if step.action == ErasureAction.delete:
                        key = self.tables[step.table].c[self.map.tables[step.table].primary_key]
                        for part in chunks(step.keys, IN_CHUNK):
                            conn.execute(delete(self.tables[step.table]).where(key.in_(part)))
                    elif erasure.mask:
                        self._mask(conn, step.table, step.keys, erasure.mask)
                    done.append(Done(table=step.table, action=step.action.value, records=len(step.keys)))
                for scrub in plan.scrub:
                    self._scrub(conn, scrub, plan.mentions)
                    done.append(Done(table=scrub.table, action=f"remove mentions from {scrub.column}",
                                     records=len(scrub.keys)))
        return Outcome(done=done, kept=plan.kept, held=plan.held)

    def erasure_of(self, step: TableStep):
        spec = self.map.tables[step.table]
        return (spec.rows[step.rule - 1].erasure if step.rule else None) or spec.erasure

    def _mask(self, conn, name: str, keys: list, mask: dict[str, Replacement]) -> None:
        """Overwrite the masked columns (or, in a key-value table, the masked keys' values) of the
        rows, each with its own value where the mask is a template."""
        spec, table = self.map.tables[name], self.tables[name]
        key = table.c[spec.primary_key]
        fields = {field for replacement in mask.values() for field in template_fields(replacement)}
        kv = spec.key_value
        wanted = [key, *(table.c[f] for f in sorted(fields - {spec.primary_key})),
                  *([table.c[kv.key]] if kv else [])]
        for part in chunks(keys, IN_CHUNK):
            groups: dict[str, tuple[dict, list]] = {}
            for row in conn.execute(select(*wanted).where(key.in_(part))).mappings():
                if kv:
                    values = {kv.value: _render(mask.get(row[kv.key], ""), row)}
                else:
                    values = {column: _render(replacement, row) for column, replacement in mask.items()}
                groups.setdefault(json.dumps(values, sort_keys=True, default=str), (values, []))[1].append(
                    row[spec.primary_key])
            for values, group in groups.values():
                conn.execute(update(table).where(key.in_(group)).values(values))

    def _scrub(self, conn, scrub: Scrub, mentions: list[str]) -> None:
        table, spec = self.tables[scrub.table], self.map.tables[scrub.table]
        key = table.c[spec.primary_key]
        for part in chunks(scrub.keys, IN_CHUNK):
            for row_key, value in conn.execute(select(key, table.c[scrub.column]).where(key.in_(part))).all():
                if isinstance(value, str) and value != (scrubbed := scrubbed_text(value, mentions)):
                    conn.execute(update(table).where(key == row_key).values({scrub.column: scrubbed}))

    def children_first(self) -> list[str]:
        """The map's tables, each before every table it references (a row before the row it points
        at); a table's references to itself and cycles are ignored."""
        ordered: list[str] = []

        def visit(name: str, path: tuple) -> None:
            if name in ordered or name in path:
                return
            for reference in self.map.tables[name].references.values():
                visit(reference.table, (*path, name))
            ordered.append(name)
        for name in self.map.tables:
            visit(name, ())
        return list(reversed(ordered))

    # -- rectification -------------------------------------------------------------------------

    def plan_rectification(self, identities: IdentitySet, old: dict[str, str], acting: Acting) -> SqlRectificationPlan:
        resolution = self.resolve(identities)
        self._instructions(resolution, acting)
        found: dict[tuple[str, str, str], list] = {}
        for ref in sorted(resolution.personal_rows(), key=lambda r: (r[0], str(r[1]))):
            spec, row = self.map.tables[ref[0]], resolution.rows[ref]
            for column, col in spec.columns.items():
                if col.identity in old and _normal(col.identity, row[column]) == old[col.identity]:
                    found.setdefault((ref[0], column, str(col.identity)), []).append(ref[1])
            if (spec.key_value and (kind := spec.key_value.identities.get(row[spec.key_value.key])) in old
                    and _normal(kind, row[spec.key_value.value]) == old[kind]):
                found.setdefault((ref[0], spec.key_value.value, str(kind)), []).append(ref[1])
        return SqlRectificationPlan(changes=[Change(table=t, column=c, kind=k, keys=keys)
                                             for (t, c, k), keys in found.items()],
                                    held=resolution.possible_matches())

    def apply_rectification(self, plan: SqlRectificationPlan, new: dict[str, str], acting: Acting) -> Outcome:
        done: dict[str, int] = {}
        with database_errors(f"store '{self.id}'", "changed",
                             advice=". `gdpr-admin datamap validate --live` names masks that break UNIQUE columns"):
            self.reflect()
            with self.engine.begin() as conn:
                for change in plan.changes:
                    table = self.tables[change.table]
                    key = table.c[self.map.tables[change.table].primary_key]
                    for part in chunks(change.keys, IN_CHUNK):
                        conn.execute(update(table).where(key.in_(part)).values({change.column: new[change.kind]}))
                    done[change.table] = done.get(change.table, 0) + len(change.keys)
        return Outcome(done=[Done(table=t, action="rectify", records=n) for t, n in done.items()], held=plan.held)


def scrubbed_text(text_: str, mentions: Iterable[str]) -> str:
    for mention in sorted(mentions, key=len, reverse=True):
        text_ = re.sub(re.escape(mention), ERASED, text_, flags=re.IGNORECASE)
    return text_


class Resolution:
    """One search of one store: which rows are the person's, which are held back, and why."""

    def __init__(self, store: SqlStore, conn, identities: IdentitySet) -> None:
        self.store, self.map, self.conn = store, store.map, conn
        self.known = IdentitySet()
        self.known.merge(identities)
        for kind, values in self.map.not_identities.items():
            self.known.exclude(str(kind), values)
        self.rows: dict[Ref, dict] = {}
        self.parents: dict[Ref, list[Ref]] = {}  # the rows each row's owner references point at
        self.root_of: dict[Ref, frozenset[Ref]] = {}
        self.strong_of: dict[Ref, set[tuple[str, str]]] = {}
        self.mine: dict[Ref, str] = {}  # the person's rows -> how they were reached
        self.my_roots: set[Ref] = set()
        self.held: dict[Ref, str] = {}  # rows held back -> why
        self.expanded: set[Ref] = set()
        self.derived: set[Ref] = set()
        self.judged: set[tuple[str, str]] = set()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Judge the identities, reach the rows they lead to, take the identities those rows hold,
        until nothing new turns up; IP addresses last, once every row of the person is known."""
        order = {"email": 0, "customer_number": 1, "phone": 2}
        while True:
            pending = sorted(self._pending(lambda kind: kind != "ip"),
                             key=lambda e: (e.standing != Standing.given, order[e.kind], e.value))
            for entry in pending:
                self._judge(entry)
            grew = self._expand()
            self._derive()
            if pending or grew:
                continue
            if not (addresses := self._pending(lambda kind: kind == "ip")):
                return
            for entry in addresses:
                self._judge(entry)

    def _pending(self, kinds) -> list:
        return [e for e in self.known.entries.values() if kinds(e.kind) and (e.kind, e.value) not in self.judged
                and e.standing in (Standing.given, Standing.confirmed, Standing.candidate)]

    def _judge(self, entry) -> None:
        self.judged.add((entry.kind, entry.value))
        matched = self.match(entry.kind, entry.value)
        self._roots([ref for ref, _ in matched])
        strong = self.known.strong() | ({(entry.kind, entry.value)} if entry.kind in STRONG_KINDS else set())
        others = {ref: self._other_owner(ref, strong) for ref, _ in matched if ref not in self.mine}
        if entry.kind == "ip":  # an IP address is only ever checked: it finds log lines, never rows
            if entry.standing == Standing.candidate:
                entry.standing = Standing.shared if others else Standing.confirmed
            return
        if entry.standing == Standing.candidate:
            if any(others.values()):
                entry.standing = Standing.shared
                for ref in others:
                    self._hold(ref, f"reached only through a {entry.kind.replace('_', ' ')} that "
                                    f"{self._owner_words(ref)} also holds")
                return
            entry.standing = Standing.confirmed
        for ref, column in matched:
            if others.get(ref):
                self._hold(ref, f"holds the request's {entry.kind.replace('_', ' ')}, but belongs to "
                                f"{self._owner_words(ref)}, which holds another email or customer number")
            else:
                self._accept(ref, f"{self.known.describe(entry.kind, entry.value)} -> {column} #{ref[1]}")

    def _other_owner(self, ref: Ref, strong: set[tuple[str, str]]) -> bool:
        """Whether the row belongs to someone else: an owner not yet the person's whose email or
        customer number is not the person's."""
        return any(root not in self.my_roots and another_person(self._strong(root), strong)
                   for root in self.root_of[ref])

    def _owner_words(self, ref: Ref) -> str:
        roots = sorted(f"{table} #{key}" for table, key in self.root_of.get(ref, {ref}))
        return "another owner (" + ", ".join(roots) + ")"

    def _hold(self, ref: Ref, reason: str) -> None:
        if ref not in self.mine:
            self.held.setdefault(ref, reason)

    def _accept(self, ref: Ref, found_by: str) -> bool:
        if ref in self.mine:
            return False
        self.mine[ref] = found_by
        self.held.pop(ref, None)
        self.my_roots |= self.root_of[ref]
        for parent in self.parents[ref]:  # up to the owner: an order's account is the person's too
            self._accept(parent, f"{found_by} -> its owner {parent[0]} #{parent[1]}")
        return True

    def _expand(self) -> bool:
        """Down every reference from the person's rows: their children are theirs, unless an owner
        reference of the child leads to someone else."""
        grew = False
        while frontier := [ref for ref in self.mine if ref not in self.expanded]:
            self.expanded.update(frontier)
            by_table: dict[str, list] = {}
            for table, key in frontier:
                by_table.setdefault(table, []).append(key)
            for table, keys in by_table.items():
                for child, column, reference in self.map.children(table):
                    found = self._fetch(child, column, keys, reference.condition)
                    self._roots(found)
                    for ref in found:
                        parent = (table, self.store.key_of(table, self.rows[ref][column]))
                        step = f"{self.mine.get(parent, table)} -> {child} #{ref[1]} ({child}.{column})"
                        grew |= self._take(ref, step, f"refers to {table} #{parent[1]} of the person")
                for store_table, kv_key, _ in self.map.value_references(table):
                    grew |= self._follow_value_reference(table, keys, store_table, kv_key)
        return grew

    def _take(self, ref: Ref, found_by: str, why_held: str) -> bool:
        if ref in self.mine:
            return False
        if self.root_of[ref] <= self.my_roots:
            return self._accept(ref, found_by)
        self._hold(ref, f"{why_held} but belongs to {self._owner_words(ref)}")
        return False

    def _follow_value_reference(self, table: str, keys: list, kv_table: str, kv_key: str) -> bool:
        """Rows of a key-value table whose value under kv_key is one of the keys (a legacy order's
        _customer_user): the entities they describe are reached."""
        spec = self.map.tables[kv_table]
        kv, sa_table = spec.key_value, self.store.tables[kv_table]
        assert kv is not None  # value_references names key-value tables only
        entity_refs = [(c, r) for c, r in spec.references.items() if r.owner]
        grew = False
        for part in chunks([str(k) for k in keys], IN_CHUNK):
            rows = self.conn.execute(self.store.select(kv_table).where(
                sa_table.c[kv.key] == kv_key, sa_table.c[kv.value].in_(part))).mappings().all()
            entities = []
            for row in rows:
                self._cache(kv_table, row)
                for column, reference in entity_refs:
                    if (target := reference.target(row, column)) is not None:
                        entities.append((reference.table, self.store.key_of(reference.table, target)))
            self._load(entities)
            entities = [e for e in dict.fromkeys(entities) if e in self.rows]
            self._roots(entities)
            for ref in entities:
                grew |= self._take(ref, f"{kv_table}.{kv_key} -> {table} of the person -> {ref[0]} #{ref[1]}",
                                   f"is described as the person's by {kv_table}.{kv_key}")
        return grew

    def _derive(self) -> None:
        """The identities the person's rows hold: evidence, checked before use."""
        for ref in [r for r in self.mine if r not in self.derived]:
            self.derived.add(ref)
            spec, row = self.map.tables[ref[0]], self.rows[ref]
            for column, col in spec.columns.items():
                if col.identity and row.get(column) is not None:
                    self.known.add(str(col.identity), row[column], f"{ref[0]}.{column} #{ref[1]}")
            if spec.key_value and (kind := spec.key_value.identities.get(row[spec.key_value.key])):
                self.known.add(str(kind), row[spec.key_value.value], f"{ref[0]} {row[spec.key_value.key]} #{ref[1]}")

    # -- rows and owners -----------------------------------------------------------------------

    def _cache(self, table: str, row) -> Ref:
        ref = (table, row[self.map.tables[table].primary_key])
        if ref not in self.rows:
            if len(self.rows) >= MAX_ROWS:
                raise InvalidInput(f"store '{self.store.id}': the search reached more than {MAX_ROWS:,} rows; the "
                                   "map's references or identities are too broad to tell one person's rows")
            self.rows[ref] = dict(row)
        return ref

    def match(self, kind: str, value: str) -> list[tuple[Ref, str]]:
        """(row, table.column) of each row holding the identity in its normal form."""
        forms = self.known.written(kind, value)
        matched = []
        for name, spec in self.map.tables.items():
            table = self.store.tables[name]
            columns = [c for c, col in spec.columns.items() if col.identity == kind]
            conditions = [self.store.equals(table.c[c], kind, value, forms) for c in columns]
            kv = spec.key_value
            kv_keys = [k for k, i in kv.identities.items() if i == kind] if kv else []
            if kv and kv_keys:
                conditions.append(and_(table.c[kv.key].in_(kv_keys),
                                       self.store.equals(table.c[kv.value], kind, value, forms)))
            if not conditions:
                continue
            for row in self.conn.execute(self.store.select(name).where(or_(*conditions))).mappings():
                hits = [f"{name}.{c}" for c in columns if _normal(kind, row[c]) == value]
                if kv and kv_keys and row[kv.key] in kv_keys and _normal(kind, row[kv.value]) == value:
                    hits.append(f"{name} {row[kv.key]}")
                if hits:  # a row the collation matched but the normal form does not is no match
                    matched.append((self._cache(name, row), hits[0]))
        return matched

    def _fetch(self, name: str, column: str, keys: list, condition: Condition | None) -> list[Ref]:
        table = self.store.tables[name]
        found = []
        for part in chunks(sorted(set(keys), key=str), IN_CHUNK):
            query = self.store.select(name).where(table.c[column].in_(part), _where(condition, table))
            found += [self._cache(name, row) for row in self.conn.execute(query).mappings()]
        return found

    def _load(self, refs: list[Ref]) -> None:
        """Fetch the rows not yet fetched."""
        by_table: dict[str, list] = {}
        for table, key in refs:
            if (table, key) not in self.rows and key is not None:
                by_table.setdefault(table, []).append(key)
        for table, keys in by_table.items():
            self._fetch(table, self.map.tables[table].primary_key, keys, None)

    def _roots(self, refs: list[Ref]) -> None:
        """Find each row's owners, fetching the rows up its owner references."""
        level, depth = [r for r in dict.fromkeys(refs) if r not in self.parents], 0
        while level:
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidInput(f"store '{self.store.id}': a chain of owner references from {level[0][0]} is "
                                   f"longer than {MAX_DEPTH}; check the map's references")
            self._link(level)
            level = [p for ref in level for p in self.parents[ref] if p not in self.parents]
        for ref in refs:
            self._root(ref, frozenset())

    def _root(self, ref: Ref, path: frozenset) -> frozenset[Ref]:
        if ref in self.root_of:
            return self.root_of[ref]
        if ref in path:  # a cycle of owner references: the row stands for itself
            return frozenset({ref})
        parents = self.parents[ref]
        roots = frozenset().union(*(self._root(p, path | {ref}) for p in parents)) if parents else frozenset({ref})
        self.root_of[ref] = roots
        return roots

    def _link(self, refs: list[Ref]) -> None:
        """Each row's parents through its owner references that hold a value, fetched."""
        found: dict[Ref, list[Ref]] = {ref: [] for ref in refs}
        by_table: dict[str, list[Ref]] = {}
        for ref in refs:
            by_table.setdefault(ref[0], []).append(ref)
        for table, group in by_table.items():
            for column, reference in self.map.tables[table].references.items():
                if reference.owner:
                    for ref in group:
                        if (target := reference.target(self.rows[ref], column)) is not None:
                            found[ref].append((reference.table, self.store.key_of(reference.table, target)))
            for kv_table, _, kv in self._kv_describing(table):
                if any(r.owner for r in kv.references.values()):
                    self._link_by_values(table, group, kv_table, kv, found)
        self._load([p for parents in found.values() for p in parents])
        for ref, parents in found.items():
            self.parents[ref] = [p for p in dict.fromkeys(parents) if p in self.rows and p != ref]

    def _link_by_values(self, table: str, group: list[Ref], kv_table: str, kv: KeyValue,
                        found: dict[Ref, list[Ref]]) -> None:
        spec = self.map.tables[kv_table]
        sa_table = self.store.tables[kv_table]
        owner_keys = {k: r for k, r in kv.references.items() if r.owner}
        entity_columns = [c for c, r in spec.references.items() if r.table == table and r.owner]
        keys = [key for _, key in group]
        for column in entity_columns:
            for part in chunks(keys, IN_CHUNK):
                for row in self.conn.execute(self.store.select(kv_table).where(
                        sa_table.c[column].in_(part), sa_table.c[kv.key].in_(list(owner_keys)))).mappings():
                    reference = owner_keys[row[kv.key]]
                    target = reference.target(dict(row), kv.value)
                    entity = (table, self.store.key_of(table, row[column]))
                    if target is not None and entity in found:
                        found[entity].append((reference.table, self.store.key_of(reference.table, target)))

    def _strong(self, root: Ref) -> set[tuple[str, str]]:
        """The emails and customer numbers that say who an owner row is: its own columns', or, for a
        row that has none (a legacy order post), those of its key-value rows."""
        if root not in self.strong_of:
            spec, row = self.map.tables[root[0]], self.rows[root]
            held = {(str(col.identity), n) for c, col in spec.columns.items() if col.identity in STRONG_KINDS
                    and (n := _normal(str(col.identity), row.get(c)))}
            for kv_table, column, kv in ([] if held else self._kv_describing(root[0])):
                sa_table = self.store.tables[kv_table]
                strong_keys = {k: str(i) for k, i in kv.identities.items() if i in STRONG_KINDS}
                if strong_keys:
                    for key, value in self.conn.execute(select(sa_table.c[kv.key], sa_table.c[kv.value]).where(
                            sa_table.c[column] == root[1], sa_table.c[kv.key].in_(list(strong_keys)))).all():
                        if n := _normal(strong_keys[key], value):
                            held.add((strong_keys[key], n))
            self.strong_of[root] = held
        return self.strong_of[root]

    def _kv_describing(self, table: str) -> list[tuple[str, str, KeyValue]]:
        """(key-value table, its column, its key and value) of each key-value table describing rows of `table`."""
        return [(name, column, spec.key_value) for name, spec in self.map.tables.items() if spec.key_value
                for column, reference in spec.references.items() if reference.table == table and reference.owner]

    # -- what the search gives -----------------------------------------------------------------

    def personal_rows(self) -> list[Ref]:
        """The person's rows that hold personal data (a key-value row only under a personal key)."""
        return [ref for ref in self.mine if self.store.personal(ref[0], self.rows[ref]) is not None]

    def possible_matches(self) -> list[PossibleMatch]:
        return [PossibleMatch(self.store.id, table, str(key), reason)
                for (table, key), reason in sorted(self.held.items(), key=lambda i: (i[0][0], str(i[0][1])))
                if self.store.personal(table, self.rows[(table, key)]) is not None]

    def dated(self, ref: Ref, depth: int = 0) -> date | None:
        """The date a row relates to: its own dated_by column, or that of the row it references."""
        spec, row = self.map.tables[ref[0]], self.rows[ref]
        if spec.dated_by:
            return _day(row[spec.dated_by])
        for column, reference in spec.references.items():
            target = reference.target(row, column)
            parent = (reference.table, self.store.key_of(reference.table, target)) if target is not None else None
            if parent in self.rows and depth < MAX_DEPTH and (day := self.dated(parent, depth + 1)):
                return day
        return None

    def mentions(self) -> list[str]:
        """How free text may mention the person: their own emails and phones as written, and names."""
        written = {form for kind in ("email", "phone") for value in self.known.values(kind)
                   for form in self.known.written(kind, value)}
        return sorted(written | full_names(self.rows[ref] for ref in self.mine))


def _day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise InvalidInput("a dated_by column holds a value that is not a date") from None
    return None
