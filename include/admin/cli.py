"""gdpr-admin: what is not a workflow. Keyring, vault set-up, audit verification, demo data,
recording an enquiry's outcome, legal holds, the caseload of requests and complaints, opening access
packages, the controllers' mailing lists.

Reads GDPR_VAULT_URL, GDPR_KEYSTORE_URL and GDPR_KEYRING_PATH (see include/common/settings.py). Prints
case references, opaque ids and counts, never personal data but a request's identities when a person
asks for them (`request show --identities`). Exit status: 0 done, 1 refused or failed (the message
says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, select

from include.admin.airflow_api import ENQUIRY_OUTCOMES_URI, AirflowApi, AirflowUnreachable
from include.common.clock import utcnow
from include.common.errors import GdprError, InvalidInput, StoreUnavailable
from include.common.files import write_atomically
from include.common.reports import plural, uk_date
from include.common.settings import VaultSettings, WorkflowSettings
from include.common.urls import display_url
from include.crypto.keyring import create_keyring, load_keyring
from include.crypto.sealing import open_sealed, package_secret
from include.datamap.model import load_data_maps_each
from include.demo.people import DEMO_INSTRUCTIONS, seed_demo
from include.demo.shop import seed_demo_logs, seed_shop
from include.demo.woocommerce import HPOS, seed_woo_shop
from include.duties.disclosures import verify_audit_log
from include.duties.enquiries import ENQUIRY, OUTCOMES, record_outcome
from include.duties.marketing import export_mailing_list, subscribe
from include.policies.instructions import load_instruction_dir, load_instruction_dir_each
from include.requests.caseload import STATUS_LABELS, CaseLine, case_line, caseload, timeline
from include.requests.complaints import OUTCOMES as COMPLAINT_OUTCOMES
from include.requests.complaints import (
    Complaint,
    acknowledge_complaint,
    close_complaint,
    complaints,
    register_complaint,
)
from include.requests.deadlines import MAX_EXTENSION_MONTHS
from include.requests.decisions import extend, refuse, release
from include.requests.importer import import_requests
from include.requests.kinds import KINDS
from include.requests.pipeline import RequestSettings
from include.requests.register import (
    PAUSE_REASONS,
    REFUSAL_REASONS,
    Request,
    close_request,
    find_request,
    get_request,
    pause_request,
    possible_matches,
    resume_request,
    show_identities,
    verify_identity,
)
from include.stores.connections import url_from_environment
from include.stores.logs import LogStore
from include.stores.sql import SqlStore
from include.stores.sql_checks import check_store, searches
from include.vault.holds import lift_hold, place_hold
from include.vault.instructions import SyncResult, record_instructions
from include.vault.rotation import rotate_kek
from include.vault.schema import CLOSED_STATUSES, record
from include.vault.store import Vault


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _settings() -> VaultSettings:
    return VaultSettings()


def _open() -> Vault:
    return Vault.open(_settings())


def cmd_keyring_init(args) -> int:
    path = _settings().keyring_path
    if args.if_missing and path.exists():
        keyring = load_keyring(path)
        print(f"keyring kept: {path} (fingerprint {keyring.fingerprint})")
        return 0
    keyring = create_keyring(path)
    print(f"keyring created: {path} (mode 0600, fingerprint {keyring.fingerprint})")
    print("Back it up apart from the vault: without it nothing in the vault can be read.")
    return 0


def cmd_keyring_rotate(args) -> int:
    workflow = WorkflowSettings()
    result = rotate_kek(_settings(), actor=_actor(),
                        sealed_dirs=[workflow.outbox_dir, workflow.disclosures_inbox / "processed"])
    print(f"key-encryption key rotated: version {result.old_version} -> {result.new_version}, "
          f"{result.rewrapped} data keys and {result.resealed} sealed files rewrapped, records untouched; "
          f"retired KEKs destroyed: {result.destroyed or 'none'}"
          + (f"; kept, still needed: {result.kept}" if result.kept else ""))
    return 0


def cmd_keyring_show(args) -> int:
    keyring = load_keyring(_settings().keyring_path)
    print(json.dumps({"location": keyring.location, "fingerprint": keyring.fingerprint,
                      "kek_versions": sorted(keyring.keks), "active_kek": keyring.active_kek}, indent=2))
    return 0


def cmd_vault_init(args) -> int:
    with Vault.open(_settings(), create=True) as vault:
        print(f"vault ready: {vault.location}; data keys in {vault.keystore.engine.url!r}")
    return 0


def cmd_vault_status(args) -> int:
    with _open() as vault:
        print(json.dumps({"vault": vault.location, "controllers": vault.controller_ids(),
                          **vault.counts()}, indent=2))
    return 0


def cmd_vault_connection(args) -> int:
    """The Airflow connection that points the workflows at this vault, as JSON."""
    settings = _settings()
    print(json.dumps({"conn_type": "gdpr-vault", "description": "The encrypted GDPR vault",
                      "extra": {"database_url": settings.vault_url,
                                "keystore_url": settings.keystore_url,
                                "keyring_path": str(settings.keyring_path)}}))
    return 0


def cmd_audit_verify(args) -> int:
    """The chain, the head, the head against the anchor in the key store, and the disclosure log
    against the chain's events: a tail cut off with an older head put back, a deleted or edited event,
    an event outside the chain, an edited, deleted or inserted disclosure are each named."""
    with _open() as vault:
        result, disclosure_problems = verify_audit_log(vault)
    problems = result.problems + disclosure_problems
    if not problems:
        print(f"audit log intact: {result.events} events, chain, head and key-store anchor verified, "
              "disclosures match")
        return 0
    print(f"audit log BROKEN: {len(problems)} problem(s) in {result.events} events",
          file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def cmd_demo_seed(args) -> int:
    with _open() as vault:
        result = seed_demo(vault)
    if result.seeded:
        print(f"demo seeded: {result.controllers} controllers, {result.records} records")
    else:
        print("demo already seeded: existing data kept")
    workflow = WorkflowSettings()
    if workflow.instructions_dir.resolve() == DEMO_INSTRUCTIONS.resolve():
        logs = seed_demo_logs(workflow.server_log_root, load_instruction_dir(workflow.instructions_dir))
        print(f"demo server logs: {logs} file(s) written under {workflow.server_log_root}")
    if args.shop_url:
        engine = create_engine(args.shop_url)
        rows = seed_shop(engine)
        engine.dispose()
        print(f"demo shop: {rows} rows loaded into {display_url(args.shop_url)}")
    if args.woo_shop_url:
        engine = create_engine(args.woo_shop_url)
        rows = seed_woo_shop(engine, HPOS)
        engine.dispose()
        print(f"demo WooCommerce shop: {rows} rows loaded into {display_url(args.woo_shop_url)}")
    return 0


def cmd_request_import(args) -> int:
    with _open() as vault:
        result = import_requests(vault, args.file, actor=_actor(), at=utcnow())
    print(f"{result.rows} request(s) in {args.file}: {len(set(result.request_ids))} registered or already there")
    return 0


def _today() -> date:
    return utcnow().date()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date such as 2026-11-24") from None


def _request_settings() -> RequestSettings:
    return RequestSettings.of(WorkflowSettings())


def _case(request: Request) -> str:
    """How staff name a request: its case reference (its id for one registered before they existed)."""
    return request.case_reference or request.id


def _print_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(headings, *rows, strict=True)]
    for cells in (headings, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())


def _days_left(days: int | None) -> str:
    return "-" if days is None else str(days)


CASELOAD_HEADINGS = ("Case", "Controller", "Kind", "Status", "Received", "Due", "Days left", "")


def _case_row(line: CaseLine) -> list[str]:
    late = "OVERDUE" if line.overdue else "answered late" if line.on_time is False else ""
    return [line.case_reference or line.request_id, line.controller_id, line.kind, line.status_label,
            uk_date(line.received_on), uk_date(line.due_on), _days_left(line.days_left), late]


def cmd_request_list(args) -> int:
    with _open() as vault:
        lines = caseload(vault, today=_today(), controller_id=args.controller, status=args.status, kind=args.kind,
                         open_only=args.open)
    _print_table(CASELOAD_HEADINGS, [_case_row(line) for line in lines])
    print(f"{plural(len(lines), 'request')}, {sum(line.overdue for line in lines)} overdue", file=sys.stderr)
    return 0


def _due(line: CaseLine) -> str:
    if line.closed_on:
        return (f"{uk_date(line.due_on)}; closed {uk_date(line.closed_on)}"
                + {True: ", on time", False: ", late", None: ""}[line.on_time])
    assert line.days_left is not None  # an open request's
    if line.overdue:
        return f"{uk_date(line.due_on)}: OVERDUE by {plural(-line.days_left, 'day')}"
    return f"{uk_date(line.due_on)}: {plural(line.days_left, 'day')} left"


def _facts(request: Request, line: CaseLine, matches: int) -> list[tuple[str, str]]:
    facts = [("Controller", request.controller_id), ("Kind", request.kind), ("Status", line.status_label),
             ("Received", uk_date(request.received_on)), ("Clock started", uk_date(request.clock_start)),
             ("Due", _due(line))]
    if request.extension_months:
        facts.append(("Extended by", plural(request.extension_months, "month")))
    if request.paused_days:
        facts.append(("Clock stopped for", plural(request.paused_days, "day")))
    if request.refusal_reason:
        facts.append(("Refused because", REFUSAL_REASONS.get(request.refusal_reason, request.refusal_reason)))
    if request.reference:
        facts.append(("Controller's reference", request.reference))
    facts.append(("Possible matches", f"{matches}" + (f" (gdpr-admin request matches {_case(request)})"
                                                      if matches else "")))
    return facts


def _detail(value: object) -> str:
    """An audit detail as staff read it: lists joined, ISO dates as a UK reader writes them."""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if isinstance(value, str) and len(value) == 10:
        try:
            return uk_date(date.fromisoformat(value))
        except ValueError:
            pass
    return str(value)


def _event(event: dict) -> str:
    details = "; ".join(f"{key.replace('_', ' ')} {_detail(value)}" for key, value in event["details"].items()
                        if key not in ("request", "case"))
    return (f"{uk_date(event['at'])} {event['at']:%H:%M}  {event['actor']}  {event['action']}"
            + (f"  ({details})" if details else ""))


def cmd_request_show(args) -> int:
    """A request's facts and timeline; its identities, personal data, only when asked for."""
    with _open() as vault:
        request = find_request(vault, args.case)
        line = case_line(vault, request.id, today=_today())
        facts = _facts(request, line, len(possible_matches(vault, request.id)))
        print(f"Case {_case(request)} (request {request.id})")
        width = max(len(name) for name, _ in facts) + 1
        for name, value in facts:
            print(f"  {name + ':':<{width}} {value}")
        print("Timeline")
        for event in timeline(vault, request.id):
            print(f"  {_event(event)}")
        if args.identities:
            print("Identities (personal data: keep it out of tickets, emails and notes)")
            for kind, value in show_identities(vault, request.id, actor=_actor(), at=utcnow()):
                print(f"  {kind:<16} {value}")
    return 0


def cmd_request_verify(args) -> int:
    on = args.on or _today()
    with _open() as vault:
        request = verify_identity(vault, find_request(vault, args.case).id, on=on, actor=_actor(), at=utcnow())
    print(f"{_case(request)}: identity verified on {uk_date(on)}; the clock runs, "
          f"due {uk_date(request.due_on)}")
    return 0


def cmd_request_pause(args) -> int:
    on = args.on or _today()
    with _open() as vault:
        request = pause_request(vault, find_request(vault, args.case).id, on=on, reason=args.reason, actor=_actor(),
                                at=utcnow())
    print(f"{_case(request)}: clock stopped on {uk_date(on)} (waiting for: {args.reason}); the due date moves on "
          "each day until `gdpr-admin request resume`")
    return 0


def cmd_request_resume(args) -> int:
    on = args.on or _today()
    with _open() as vault:
        request = resume_request(vault, find_request(vault, args.case).id, on=on, actor=_actor(), at=utcnow())
    print(f"{_case(request)}: clock restarted on {uk_date(on)} after {plural(request.paused_days, 'day')} "
          f"stopped in all; due {uk_date(request.due_on)}")
    return 0


def cmd_request_extend(args) -> int:
    with _open() as vault:
        request = find_request(vault, args.case)
        letter = extend(vault, request.id, _request_settings(), months=args.months, reason=args.reason,
                        notified_on=args.told_on, actor=_actor(), at=utcnow())
        extended = get_request(vault, request.id)
    print(f"{_case(extended)}: extended by {plural(args.months, 'month')}, due {uk_date(extended.due_on)}")
    print(f"extension letter: {letter}")
    return 0


def cmd_request_refuse(args) -> int:
    with _open() as vault:
        request = find_request(vault, args.case)
        letter = refuse(vault, request.id, _request_settings(), reason=args.reason, actor=_actor(), at=utcnow())
    print(f"{_case(request)}: refused, because {REFUSAL_REASONS[args.reason]}")
    print(f"refusal letter: {letter}")
    return 0


def cmd_request_release(args) -> int:
    with _open() as vault:
        request = find_request(vault, args.case)
        delivered = release(vault, request.id, _request_settings(), actor=_actor(), at=utcnow())
    print(f"{_case(request)}: reviewed and released; completed")
    print(f"package: {delivered}")
    return 0


def cmd_request_close(args) -> int:
    with _open() as vault:
        request = find_request(vault, args.case)
        if not request.is_open:
            print(f"{_case(request)}: already {STATUS_LABELS[request.status]}; nothing changed")
            return 0
        close_request(vault, request.id, status=args.status, actor=_actor(), at=utcnow())
    print(f"{_case(request)}: closed as {STATUS_LABELS[args.status]}, without a letter")
    return 0


def cmd_request_matches(args) -> int:
    with _open() as vault:
        request = find_request(vault, args.case)  # UnknownRecord for what is not a request
        matches = possible_matches(vault, request.id)
    for match in matches:
        print(f"{match['store']:<16} {match['table_name']:<28} {match['row_key']:<12} {match['reason']}")
    print(f"{len(matches)} possible match(es) held back for {_case(request)}: nothing was packaged or "
          "changed for them; a person decides", file=sys.stderr)
    return 0


def _complaint_status(item: Complaint) -> str:
    if item.closed_on:
        return f"closed {uk_date(item.closed_on)}, {COMPLAINT_OUTCOMES.get(item.outcome or '', item.outcome)}"
    if item.acknowledged_on:
        return f"acknowledged {uk_date(item.acknowledged_on)}"
    return "to acknowledge"


COMPLAINT_HEADINGS = ("Complaint", "Controller", "Case", "Received", "Acknowledge by", "Status", "Days left", "")


def cmd_complaint_list(args) -> int:
    with _open() as vault:
        found = complaints(vault, today=_today(), controller_id=args.controller, open_only=args.open)
        cases = {item.request_id: _case(get_request(vault, item.request_id))
                 for item in found if item.request_id}
    _print_table(COMPLAINT_HEADINGS, [
        [item.reference, item.controller_id, cases[item.request_id] if item.request_id else "-",
         uk_date(item.received_on), uk_date(item.acknowledge_by), _complaint_status(item),
         _days_left(item.days_left), "OVERDUE" if item.overdue else ""] for item in found])
    waiting = sum(item.days_left is not None for item in found)
    print(f"{plural(len(found), 'complaint')}, {waiting} to acknowledge, {sum(item.overdue for item in found)} overdue",
          file=sys.stderr)
    return 0


def cmd_complaint_add(args) -> int:
    with _open() as vault:
        item = register_complaint(vault, controller_id=args.controller, received_on=args.received_on or _today(),
                                  request_id=args.request, actor=_actor(), at=utcnow())
    print(f"complaint {item.reference} registered: acknowledge it by {uk_date(item.acknowledge_by)}")
    return 0


def cmd_complaint_acknowledge(args) -> int:
    on = args.on or _today()
    with _open() as vault:
        item = acknowledge_complaint(vault, args.reference, on=on, actor=_actor(), at=utcnow())
    print(f"complaint {item.reference} acknowledged on {uk_date(on)}")
    return 0


def cmd_complaint_close(args) -> int:
    on = args.on or _today()
    with _open() as vault:
        item = close_complaint(vault, args.reference, on=on, outcome=args.outcome, actor=_actor(), at=utcnow())
    print(f"complaint {item.reference} closed on {uk_date(on)}: {COMPLAINT_OUTCOMES[args.outcome]}")
    return 0


def cmd_datamap_validate(args) -> int:
    """Each map on its own; with --live, each store against its database or directory."""
    workflow = WorkflowSettings()
    directory = args.directory or workflow.datamaps_dir
    found = load_data_maps_each(directory)
    problems = [str(error) for error in found.failed.values()]
    given = dict(args.connection or [])
    for loaded in found.files:
        data_map = loaded.content
        print(f"{loaded.path.name}: store {data_map.store} ({data_map.kind}) of controller {data_map.controller}")
        if not args.live:
            continue
        if data_map.kind == "server_logs":
            try:
                LogStore(loaded, workflow.server_log_root).test_connection()
            except StoreUnavailable as exc:
                problems.append(str(exc))
            continue
        connection = data_map.connection
        assert connection is not None  # a sql map is validated to name its connection
        url = given.get(connection) or url_from_environment(connection)
        if url is None:
            problems.append(f"{loaded.path}:{loaded.line_of('connection')}: connection: '{connection}' is "
                            f"not set here: give AIRFLOW_CONN_{connection.upper()} or --connection {connection}=URL")
            continue
        engine = create_engine(url)
        try:
            store = SqlStore(loaded, engine)
            store.test_connection()
            problems += [str(finding) for finding in check_store(store)]
            for line in searches(store):
                print(f"  {line}")
        except StoreUnavailable as exc:
            problems.append(str(exc))
        finally:
            engine.dispose()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(found.files) + len(found.failed)} data map(s) in {directory}"
          f"{' checked against their stores' if args.live else ''}: {len(problems)} problem(s)")
    return 1 if problems else 0


def _connection(text: str) -> tuple[str, str]:
    conn_id, sep, url = text.partition("=")
    if not sep or not conn_id or not url:
        raise argparse.ArgumentTypeError("expected CONNECTION_ID=SQLALCHEMY_URL")
    return conn_id, url


def cmd_package_secret(args) -> int:
    with _open() as vault:
        print(package_secret(args.file.read_bytes(), vault.keyring))
    return 0


def cmd_package_open(args) -> int:
    sealed = args.file.read_bytes()
    if args.secret_file:
        files = open_sealed(sealed, secret=args.secret_file.read_text())
    else:
        files = open_sealed(sealed, keyring=load_keyring(_settings().keyring_path))
    for name, content in files.items():
        target = (args.out / name).resolve()
        if not target.is_relative_to(args.out.resolve()):
            raise InvalidInput(f"the package names a file outside {args.out}: {name}")
        write_atomically(target, content, mode=0o600)
    print(f"{len(files)} file(s) written under {args.out}; start with report.html")
    return 0


def cmd_instructions_load(args) -> int:
    """Each file on its own, in its own transaction: a bad file is named and keeps no other out."""
    directory = args.directory or WorkflowSettings().instructions_dir
    found = load_instruction_dir_each(directory)
    failed = dict(found.failed)
    total = SyncResult()
    with _open() as vault:
        for loaded in found.files:
            try:
                total += record_instructions(vault, [loaded], actor=_actor(), at=utcnow())
            except InvalidInput as exc:
                failed[loaded.path] = exc
    for path in sorted(failed):
        print(f"error: {failed[path]}", file=sys.stderr)
    files = len(found.files) + len(found.failed)
    print(f"instructions from {files - len(failed)} of {files} file(s) in {directory}: "
          f"{total.registered} controller(s) registered, {total.changed} changed; {total.recorded} "
          f"instruction(s) recorded, {total.unchanged} already recorded"
          + (f"; {len(failed)} file(s) failed" if failed else ""))
    return 1 if failed else 0


def cmd_instructions_history(args) -> int:
    with _open() as vault:
        book = vault.instruction_book()
    categories = [args.category] if args.category else book.categories(args.controller)
    if not categories:
        print(f"no instructions recorded for controller '{args.controller}'", file=sys.stderr)
        return 1
    now = utcnow()
    for category in categories:
        current = book.in_effect(args.controller, category, now)
        for item in book.history(args.controller, category):
            mark = "in effect" if item == current else "replaced" if item.given_on <= now.date() else "future"
            print(f"{category:<12} {item.given_on}  {mark:<9}  {item.retention.text}  "
                  f"({item.legal_basis}; {item.purpose}; given by {item.given_by})")
    return 0


def cmd_controller_list(args) -> int:
    with _open() as vault:
        controllers = vault.controllers()
    if not controllers:
        print("no controllers registered: write each one's instruction file and run "
              "`gdpr-admin instructions load`", file=sys.stderr)
    for item in controllers:
        print(f"{item.id:<18} {item.region:<17}  {item.name}")
    return 0


def cmd_enquiry_list(args) -> int:
    query = select(record.c.id, record.c.controller_id, record.c.created_at, record.c.outcome) \
        .where(record.c.category == ENQUIRY).order_by(record.c.controller_id, record.c.created_at)
    if args.controller:
        query = query.where(record.c.controller_id == args.controller)
    if args.open:
        query = query.where(record.c.outcome.is_(None))
    with _open() as vault, vault.engine.connect() as conn:
        for row in conn.execute(query):
            print(f"{row.id}  {row.controller_id:<18} {row.created_at:%Y-%m-%d}  {row.outcome or 'open'}")
    return 0


def cmd_enquiry_find(args) -> int:
    with _open() as vault:
        ids = set(vault.find_records(args.controller, "email", args.email))
        for view in vault.read_records(sorted(ids)):
            if view.category == ENQUIRY:
                print(f"{view.id}  {view.created_at:%Y-%m-%d}  {view.outcome or 'open'}")
    return 0


def cmd_enquiry_outcome(args) -> int:
    with _open() as vault:
        result = record_outcome(vault, args.enquiry_id, args.outcome, actor=_actor(), at=utcnow())
    state = "recorded" if result.changed else "already recorded"
    print(f"enquiry {result.enquiry_id}: outcome '{result.outcome}' {state}")
    if args.no_notify:
        return 0
    try:
        event = AirflowApi.from_env().emit_asset_event(
            ENQUIRY_OUTCOMES_URI, {"enquiry_id": result.enquiry_id, "outcome": result.outcome})
        print(f"enquiry_purge scheduled by asset event {event}")
    except AirflowUnreachable as exc:
        print(f"warning: {exc}; the outcome is saved and the hourly enquiry_purge run will act on it",
              file=sys.stderr)
    return 0


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO date such as 2027-03-31") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_hold_place(args) -> int:
    with _open() as vault:
        hold_id = place_hold(vault, controller_id=args.controller, subject_id=args.subject,
                             record_ids=args.record or (), reason=args.reason, ends_at=args.until,
                             actor=_actor(), at=utcnow())
    print(f"legal hold placed: {hold_id}")
    return 0


def cmd_hold_lift(args) -> int:
    with _open() as vault:
        lifted = lift_hold(vault, args.hold_id, actor=_actor(), at=utcnow())
    print(f"legal hold {args.hold_id} {'lifted' if lifted else 'was already lifted'}")
    return 0


def cmd_marketing_subscribe(args) -> int:
    with _open() as vault:
        record_id = subscribe(vault, controller_id=args.controller, email=args.email, name=args.name,
                              source=args.source, actor=_actor(), at=utcnow())
    print(f"subscribed: record {record_id}")
    return 0


def cmd_marketing_export(args) -> int:
    with _open() as vault:
        export = export_mailing_list(vault, controller_id=args.controller,
                                     outbox=args.outbox or WorkflowSettings().outbox_dir, actor=_actor(), at=utcnow())
    print(f"{export.exported} address(es) sealed in {export.path}; left out: {export.suppressed} on the "
          f"suppression list, {export.restricted} restricted. `gdpr-admin package secret` gives its secret.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gdpr-admin", description=__doc__.split("\n\n")[0])
    groups = parser.add_subparsers(dest="group", required=True)

    def command(group, name, func, help_):
        sub = group.add_parser(name, help=help_, description=help_)
        sub.set_defaults(func=func)
        return sub

    keyring = groups.add_parser("keyring", help="the keyring of key-encryption keys")
    kcmds = keyring.add_subparsers(dest="command", required=True)
    init = command(kcmds, "init", cmd_keyring_init, "create the keyring (mode 0600)")
    init.add_argument("--if-missing", action="store_true", help="keep an existing keyring")
    command(kcmds, "rotate", cmd_keyring_rotate, "new key-encryption key; rewrap every data key")
    command(kcmds, "show", cmd_keyring_show, "fingerprint and key versions (no key material)")

    vault = groups.add_parser("vault", help="the encrypted vault")
    vcmds = vault.add_subparsers(dest="command", required=True)
    command(vcmds, "init", cmd_vault_init, "create the vault's tables and bind the keyring (idempotent)")
    command(vcmds, "status", cmd_vault_status, "controllers and counts")
    command(vcmds, "connection-json", cmd_vault_connection, "the Airflow connection for this vault")

    audit = groups.add_parser("audit", help="the hash-chained audit log")
    acmds = audit.add_subparsers(dest="command", required=True)
    command(acmds, "verify", cmd_audit_verify, "check every event and the chain's head")

    demo = groups.add_parser("demo", help="the embedded demo data")
    dcmds = demo.add_subparsers(dest="command", required=True)
    seed = command(dcmds, "seed", cmd_demo_seed, "load the synthetic demo once (kept if present)")
    seed.add_argument("--shop-url", help="also load the demo client shop into this SQLAlchemy URL")
    seed.add_argument("--woo-shop-url", help="also load the demo WooCommerce shop (HPOS tables) into this URL")

    request = groups.add_parser("request", help="data subjects' requests")
    rcmds = request.add_subparsers(dest="command", required=True)
    imported = command(rcmds, "import", cmd_request_import,
                       "register requests from a CSV file with their received dates (idempotent)")
    imported.add_argument("file", type=Path)
    _request_commands(rcmds, command)

    complaint = groups.add_parser("complaint", help="complaints about the handling of personal data")
    _complaint_commands(complaint.add_subparsers(dest="command", required=True), command)

    package = groups.add_parser("package", help="sealed access packages")
    pcmds = package.add_subparsers(dest="command", required=True)
    secret = command(pcmds, "secret", cmd_package_secret,
                     "the secret that opens a package, to send the controller apart from it")
    secret.add_argument("file", type=Path)
    opened = command(pcmds, "open", cmd_package_open, "decrypt a package into a directory")
    opened.add_argument("file", type=Path)
    opened.add_argument("--out", type=Path, required=True)
    opened.add_argument("--secret-file", type=Path, help="the package's secret; default: the keyring")

    datamap = groups.add_parser("datamap", help="the data maps of the controllers' stores")
    mapcmds = datamap.add_subparsers(dest="command", required=True)
    validate = command(mapcmds, "validate", cmd_datamap_validate,
                       "check every data map (file, line, field); with --live, each store too; exit 1 on a problem")
    validate.add_argument("--directory", type=Path, help="default: GDPR_DATAMAPS_DIR")
    validate.add_argument("--live", action="store_true",
                          help="check each store's tables, columns, indexes and UNIQUE columns through its connection "
                               "(AIRFLOW_CONN_<ID>), and print what a request searches")
    validate.add_argument("--connection", action="append", type=_connection, metavar="ID=URL",
                          help="a store's SQLAlchemy URL, instead of AIRFLOW_CONN_<ID>; repeatable")

    instructions = groups.add_parser("instructions", help="controllers' documented instructions")
    icmds = instructions.add_subparsers(dest="command", required=True)
    load = command(icmds, "load", cmd_instructions_load,
                   "validate the instruction files, register new controllers and record new "
                   "instructions (history is kept); each file on its own, exit 1 if any failed")
    load.add_argument("--directory", type=Path, help="default: GDPR_INSTRUCTIONS_DIR")
    history = command(icmds, "history", cmd_instructions_history,
                      "a controller's instructions, old and current")
    history.add_argument("controller")
    history.add_argument("category", nargs="?")

    controllers = groups.add_parser("controller", help="the controllers we process for")
    ccmds = controllers.add_subparsers(dest="command", required=True)
    command(ccmds, "list", cmd_controller_list,
            "registered controllers with their region and legal name (registered by `instructions load`)")

    enquiry = groups.add_parser("enquiry", help="prospects' enquiries")
    ecmds = enquiry.add_subparsers(dest="command", required=True)
    listing = command(ecmds, "list", cmd_enquiry_list, "enquiry ids, dates and outcomes")
    listing.add_argument("--controller")
    listing.add_argument("--open", action="store_true", help="only enquiries not yet closed")
    find = command(ecmds, "find", cmd_enquiry_find, "a person's enquiries, by email (blind index)")
    find.add_argument("--controller", required=True)
    find.add_argument("--email", required=True)
    outcome = command(ecmds, "outcome", cmd_enquiry_outcome,
                      "close an enquiry and wake enquiry_purge with an asset event")
    outcome.add_argument("enquiry_id")
    outcome.add_argument("outcome", choices=OUTCOMES)
    outcome.add_argument("--no-notify", action="store_true",
                         help="record only; the hourly run of enquiry_purge picks it up")

    hold = groups.add_parser("hold", help="legal holds")
    hcmds = hold.add_subparsers(dest="command", required=True)
    place = command(hcmds, "place", cmd_hold_place, "keep a controller's, a subject's or some records' data")
    place.add_argument("--controller", required=True)
    place.add_argument("--subject")
    place.add_argument("--record", action="append", help="a record id; repeat for a set of records")
    place.add_argument("--reason", required=True, help="why (no personal data: it is stored in clear)")
    place.add_argument("--until", type=_when, help="end of the hold (ISO date); none means until lifted")
    lift = command(hcmds, "lift", cmd_hold_lift, "lift a legal hold")
    lift.add_argument("hold_id")

    marketing = groups.add_parser("marketing", help="controllers' mailing lists and suppression lists")
    mcmds = marketing.add_subparsers(dest="command", required=True)
    signup = command(mcmds, "subscribe", cmd_marketing_subscribe, "add a person to a controller's mailing list")
    signup.add_argument("--controller", required=True)
    signup.add_argument("--email", required=True)
    signup.add_argument("--name", required=True)
    signup.add_argument("--source", default="signup form", help="where the sign-up came from")
    export = command(mcmds, "export", cmd_marketing_export,
                     "seal the mailing list, without suppressed or restricted people, into the outbox")
    export.add_argument("--controller", required=True)
    export.add_argument("--outbox", type=Path, help="default: GDPR_OUTBOX_DIR")
    return parser


def _request_commands(rcmds, command) -> None:
    listed = command(rcmds, "list", cmd_request_list,
                     "the caseload: every request with its status, due date and days left, overdue ones flagged")
    listed.add_argument("--controller")
    listed.add_argument("--kind", choices=KINDS)
    listed.add_argument("--status", choices=STATUS_LABELS)
    listed.add_argument("--open", action="store_true", help="only requests still open")
    show = command(rcmds, "show", cmd_request_show, "a request's facts, its timeline and its possible matches")
    show.add_argument("case", metavar="CASE", help="its case reference (OAK-2026-0007) or request id")
    show.add_argument("--identities", action="store_true",
                      help="also print the identities the request was made with (personal data)")
    matches = command(rcmds, "matches", cmd_request_matches,
                      "rows a request's search held back for a person to decide, and why")
    matches.add_argument("case", metavar="CASE", help="its case reference or request id")

    def action(name, func, help_):
        sub = command(rcmds, name, func, help_)
        sub.add_argument("case", metavar="CASE", help="its case reference (OAK-2026-0007) or request id")
        return sub

    verify = action("verify", cmd_request_verify, "the requester's identity is verified: the clock starts")
    verify.add_argument("--on", type=_day, help="the day the evidence arrived (default: today)")
    pause = action("pause", cmd_request_pause, "stop the clock while waiting for the requester (Art. 12A)")
    pause.add_argument("--reason", required=True, choices=PAUSE_REASONS, help="what the clock waits for")
    pause.add_argument("--on", type=_day, help="the day it was asked for (default: today)")
    resume = action("resume", cmd_request_resume, "restart the clock: the due date moves on by the days stopped")
    resume.add_argument("--on", type=_day, help="the day what was asked for arrived (default: today)")
    extended = action("extend", cmd_request_extend,
                      "extend by up to two months, told before the first deadline; writes the extension letter")
    extended.add_argument("--months", required=True, type=int, choices=range(1, MAX_EXTENSION_MONTHS + 1))
    extended.add_argument("--reason", required=True,
                          help="why more time is needed, as the letter gives it (no personal data)")
    extended.add_argument("--told-on", required=True, type=_day, help="the day the requester was told")
    refused = action("refuse", cmd_request_refuse,
                     "refuse, with its reason; writes the refusal letter (a package held for review is destroyed)")
    refused.add_argument("--reason", required=True, choices=REFUSAL_REASONS)
    action("release", cmd_request_release, "a package held for review is approved: into the outbox, request completed")
    close = action("close", cmd_request_close, "close an open request as completed or refused, without a letter")
    close.add_argument("--status", required=True, choices=CLOSED_STATUSES)


def _complaint_commands(ccmds, command) -> None:
    add = command(ccmds, "add", cmd_complaint_add, "register a complaint: it is to be acknowledged within 30 days")
    add.add_argument("--controller", required=True)
    add.add_argument("--request", metavar="CASE", help="the request it is about, if any")
    add.add_argument("--received-on", type=_day, help="default: today")
    listed = command(ccmds, "list", cmd_complaint_list, "complaints, with the days left to acknowledge them")
    listed.add_argument("--controller")
    listed.add_argument("--open", action="store_true", help="only complaints not yet closed")
    acknowledge = command(ccmds, "acknowledge", cmd_complaint_acknowledge, "the complaint was acknowledged")
    acknowledge.add_argument("reference", metavar="REFERENCE", help="its reference (OAK-2026-C0001) or id")
    acknowledge.add_argument("--on", type=_day, help="default: today")
    close = command(ccmds, "close", cmd_complaint_close, "the complaint was answered, with its outcome")
    close.add_argument("reference", metavar="REFERENCE", help="its reference (OAK-2026-C0001) or id")
    close.add_argument("--outcome", required=True, choices=COMPLAINT_OUTCOMES)
    close.add_argument("--on", type=_day, help="default: today")


TRY_AGAIN = 75  # sysexits' EX_TEMPFAIL: a scheduler or script may run the command again later


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GdprError as exc:
        print(f"error: {exc}" + (" (try again later)" if exc.retryable else ""), file=sys.stderr)
        return TRY_AGAIN if exc.retryable else 1
    except ValueError as exc:  # settings that fail validation
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
