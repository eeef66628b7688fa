"""gdpr-admin: what is not a workflow. Keyring, vault set-up, audit verification, demo data,
recording an enquiry's outcome, legal holds, importing requests, opening access packages, the
controllers' mailing lists.

Reads GDPR_VAULT_URL, GDPR_KEYSTORE_URL and GDPR_KEYRING_PATH (see include/common/settings.py). Prints
opaque ids and counts, never personal data. Exit status: 0 done, 1 refused or failed (the message
says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, select

from include.admin.airflow_api import ENQUIRY_OUTCOMES_URI, AirflowApi, AirflowUnreachable
from include.common.clock import utcnow
from include.common.errors import GdprError, InvalidInput, StoreUnavailable
from include.common.files import write_atomically
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
from include.requests.importer import import_requests
from include.requests.register import get_request, possible_matches, requests_received
from include.stores.connections import url_from_environment
from include.stores.logs import LogStore
from include.stores.sql import SqlStore
from include.stores.sql_checks import check_store, searches
from include.vault.holds import lift_hold, place_hold
from include.vault.instructions import SyncResult, record_instructions
from include.vault.rotation import rotate_kek
from include.vault.schema import record
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


def cmd_request_list(args) -> int:
    with _open() as vault:
        ids = requests_received(vault, date.min, date.max, kind=args.kind, open_only=args.open)
        for request in (get_request(vault, request_id) for request_id in ids):
            if args.controller and request.controller_id != args.controller:
                continue
            print(f"{request.id}  {request.controller_id:<18} {request.kind:<8} {request.status:<11} "
                  f"received {request.received_on}  due {request.due_on}  {request.reference or ''}")
    return 0


def cmd_request_matches(args) -> int:
    with _open() as vault:
        get_request(vault, args.request_id)  # UnknownRecord for an id that is not a request
        matches = possible_matches(vault, args.request_id)
    for match in matches:
        print(f"{match['store']:<16} {match['table_name']:<28} {match['row_key']:<12} {match['reason']}")
    print(f"{len(matches)} possible match(es) held back for request {args.request_id}: nothing was packaged or "
          "changed for them; a person decides", file=sys.stderr)
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
    listed = command(rcmds, "list", cmd_request_list, "requests with their status and due dates")
    listed.add_argument("--controller")
    listed.add_argument("--kind", default="access")
    listed.add_argument("--open", action="store_true", help="only requests still open")
    matches = command(rcmds, "matches", cmd_request_matches,
                      "rows a request's search held back for a person to decide, and why")
    matches.add_argument("request_id")

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
