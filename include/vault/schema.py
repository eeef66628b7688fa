"""Tables of the vault database and of the separate data-key store.

Personal values live only in record_field.ciphertext. Every other column is metadata a workflow may
read without a key: controller, category, purpose, source, dates, lifecycle, opaque ids.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from include.vault.db import UTCDateTime

ID = String(32)  # opaque ids: 128 bits as hex (see store.new_id)

vault_metadata = MetaData()

vault_meta = Table(
    "vault_meta", vault_metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

controller = Table(
    "controller", vault_metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),  # the controller's legal name, from its instruction file
    Column("region", String(32), nullable=False),  # one of REGIONS
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

data_subject = Table(
    "data_subject", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    # prospect, client, contact or customer: prospects alone fall to the enquiry purge.
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("erased_at", UTCDateTime),
)

# Subjects whose last record is deleted: their data key is destroyed once that deletion commits (a
# key destroyed before could strand a record written meanwhile); a run killed in between leaves
# them here, and the next deletion run destroys them first.
key_to_destroy = Table(
    "key_to_destroy", vault_metadata,
    Column("subject_id", ID, primary_key=True),
    Column("since", UTCDateTime, nullable=False),
)

record = Table(
    "record", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("subject_id", ForeignKey("data_subject.id"), nullable=False, index=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    Column("category", String(32), nullable=False),
    Column("purpose", String(200), nullable=False),
    Column("source", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The date the record relates to (an invoice's date decides its financial year).
    Column("relates_to", Date),
    # None while the end depends on an event still to come (an open enquiry, a live contract).
    Column("retention_end", UTCDateTime),
    Column("parent_id", ID),
    Column("outcome", String(16)),
    Column("outcome_at", UTCDateTime),
    # Sweeps walk one controller's category in id order (keyset batches): the id ends the index.
    Index("ix_record_controller_category", "controller_id", "category", "id"),
    # Most records have no parent; where partial indexes exist, those rows stay out of it.
    Index("ix_record_parent_id", "parent_id", sqlite_where=text("parent_id IS NOT NULL"),
          postgresql_where=text("parent_id IS NOT NULL")),
)

record_field = Table(
    "record_field", vault_metadata,
    Column("record_id", ForeignKey("record.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("ciphertext", LargeBinary(length=2**24), nullable=False),
    # Blind index (hex HMAC) of identity fields, None for the rest.
    Column("lookup", String(64)),
    # Only identity fields are looked up; MariaDB, which has no partial indexes, indexes every row.
    Index("ix_record_field_lookup", "name", "lookup", sqlite_where=text("lookup IS NOT NULL"),
          postgresql_where=text("lookup IS NOT NULL")),
    # SQLite: the primary key is the table's own B-tree rather than a second index beside it.
    sqlite_with_rowid=False,
)

# Controllers' instructions (Art. 28(3)(a)), append-only: each (controller, category) has a history,
# and the one in effect on a day is the latest given on or before it.
instruction = Table(
    "instruction", vault_metadata,
    Column("controller_id", ForeignKey("controller.id"), primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("given_on", Date, primary_key=True),
    Column("purpose", String(200), nullable=False),
    Column("legal_basis", String(32), nullable=False),
    Column("retention", String(200), nullable=False),
    Column("given_by", String(100), nullable=False),
    Column("financial_year_end", String(5), nullable=False),
    Column("log_action", String(16)),
    Column("source", String(100), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

legal_hold = Table(
    "legal_hold", vault_metadata,
    Column("id", ID, primary_key=True),
    # Scope: the whole controller, one subject, or the records listed in legal_hold_record.
    Column("scope", String(16), nullable=False),
    Column("controller_id", ForeignKey("controller.id"), nullable=False, index=True),
    Column("subject_id", ID, index=True),
    Column("reason", String(500), nullable=False),
    Column("placed_by", String(100), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime),
    Column("lifted_at", UTCDateTime),
    Column("lifted_by", String(100)),
)

legal_hold_record = Table(
    "legal_hold_record", vault_metadata,
    Column("hold_id", ForeignKey("legal_hold.id"), primary_key=True),
    Column("record_id", ID, primary_key=True, index=True),
)

# The workflow run working on a request holds its lease until it finishes or the lease runs out;
# another run leaves the request alone meanwhile, so runs of one workflow can work side by side.
request_lease = Table(
    "request_lease", vault_metadata,
    Column("request_id", ID, primary_key=True),
    Column("holder", String(250), nullable=False),  # the workflow and run
    Column("until", UTCDateTime, nullable=False),
)

# A request is open until it is completed or refused; while open, the person's data is kept.
# awaiting_id: the controller checks the requester's identity first, and the clock waits (Art. 12A);
# awaiting_review: the package is made and kept out of the outbox until a person releases it.
OPEN_STATUSES = ("received", "awaiting_id", "in_progress", "awaiting_review", "paused")
CLOSED_STATUSES = ("completed", "refused")

rights_request = Table(
    "rights_request", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    Column("subject_id", ID, index=True),  # null until found, and for a person the vault does not hold
    # access, rectify, erase, restrict, object
    Column("kind", String(16), nullable=False),
    # one of OPEN_STATUSES or CLOSED_STATUSES
    Column("status", String(16), nullable=False),
    Column("reference", String(64)),  # the controller's own reference: importing twice adds nothing
    Column("received_on", Date, nullable=False),
    Column("identity_verified_on", Date),
    Column("fee_received_on", Date),
    Column("clock_start", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("extension_months", Integer, nullable=False, server_default=text("0")),
    Column("extension_reason", Text),
    Column("paused_days", Integer, nullable=False, server_default=text("0")),
    Column("paused_on", Date),
    Column("refusal_reason", Text),
    # What the right needs, none of it personal: the field to rectify, the objection's ground, ...
    Column("particulars", Text),
    Column("package", String(500)),  # where the delivered package is, relative to the outbox
    Column("closed_at", UTCDateTime),
    Index("ux_request_reference", "controller_id", "reference", unique=True),
)

# A request's case reference, as staff, the controller and the person quote it (OAK-2026-0007): the
# controller's case prefix, the year the request was received, and the next number of that prefix and
# year. Allocated when the request is registered, in its transaction (include/requests/register.py);
# a request registered before references existed gets one when first read for a package or a
# confirmation. The counter row of a prefix and year is locked while a number is taken from it, so
# two registrations never take the same number; a prefix two controllers share shares its numbers,
# and references stay unique.
case_counter = Table(
    "case_counter", vault_metadata,
    Column("prefix", String(8), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last_number", Integer, nullable=False),
)

case_reference = Table(
    "case_reference", vault_metadata,
    Column("request_id", ForeignKey("rights_request.id"), primary_key=True),
    Column("reference", String(24), nullable=False, unique=True),
)

# Why a request's clock is stopped (Art. 12A: waiting for the requester's identity, a clarification or
# a fee), while it is: the row goes when the clock restarts, the history stays in the audit log.
request_pause = Table(
    "request_pause", vault_metadata,
    Column("request_id", ForeignKey("rights_request.id"), primary_key=True),
    Column("reason", String(16), nullable=False),  # identity, clarification, fee
)

# Complaints about the handling of personal data (DUAA 2025, in force 19 June 2026): acknowledged within
# 30 days of receipt, answered without undue delay, the outcome told. About one request or on their own.
# The reference is the controller's case prefix, the year, C and a number: OAK-2026-C0003.
complaint = Table(
    "complaint", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("reference", String(24), nullable=False, unique=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    Column("request_id", ForeignKey("rights_request.id")),
    Column("received_on", Date, nullable=False),
    Column("acknowledge_by", Date, nullable=False),
    Column("acknowledged_on", Date),
    Column("closed_on", Date),
    Column("outcome", String(16)),  # upheld, partly_upheld, not_upheld, withdrawn
)

complaint_counter = Table(
    "complaint_counter", vault_metadata,
    Column("prefix", String(8), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last_number", Integer, nullable=False),
)

# Where a controller wants a person to decide before the irreversible, as its instruction file says:
# the requester's identity checked before work starts, an access package reviewed before delivery, an
# erasure confirmed before anything is erased.
controller_review = Table(
    "controller_review", vault_metadata,
    Column("controller_id", ForeignKey("controller.id"), primary_key=True),
    Column("identity", Boolean, nullable=False),
    Column("package", Boolean, nullable=False),
    Column("erasure", Boolean, nullable=False),
)

# What a controller's instruction file says besides its instructions, for what people read: its
# contact (named in access packages) and its case prefix. Recorded with its instructions
# (include/vault/instructions.py); a controller without a row has no contact and the default prefix.
controller_detail = Table(
    "controller_detail", vault_metadata,
    Column("controller_id", ForeignKey("controller.id"), primary_key=True),
    Column("case_prefix", String(8), nullable=False),
    Column("contact", String(300)),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# Restrictions of processing (Art. 18): while one is active, the subject's data is stored and nothing
# else. Placed at the person's request, while an objection is weighed, or on the records an erasure
# had to keep under a legal reason.
KEPT_AFTER_ERASURE = "kept_after_erasure"  # a restriction's grounds: records kept under a legal reason
restriction = Table(
    "restriction", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    Column("subject_id", ID, nullable=False, index=True),
    Column("grounds", String(32), nullable=False),  # a code word: restriction.GROUNDS
    Column("request_id", ID),
    Column("placed_by", String(100), nullable=False),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("lifted_at", UTCDateTime),
    Column("lifted_by", String(100)),
    Column("person_told_on", Date),  # Art. 18(3): the person is told before a restriction is lifted
)

# People who objected to direct marketing (Art. 21(3)), per controller, as the blind index of their
# email: never the address. Kept when the person is erased, so they are never contacted again.
suppression = Table(
    "suppression", vault_metadata,
    Column("controller_id", ForeignKey("controller.id"), primary_key=True),
    Column("email_lookup", String(64), primary_key=True),
    Column("request_id", ID),
    Column("added_at", UTCDateTime, nullable=False),
)

# Disclosures to third parties (Art. 30(2), 19): who received which categories of whose data, when, on
# what basis; the instructions in effect on disclosed_on are the ones it was made under. The person is
# the subject id where the vault holds them, and always their email's blind index.
disclosure = Table(
    "disclosure", vault_metadata,
    Column("id", ID, primary_key=True),
    Column("controller_id", ForeignKey("controller.id"), nullable=False),
    Column("recipient_id", String(64), nullable=False),
    Column("subject_id", ID, index=True),
    Column("email_lookup", String(64), nullable=False, index=True),
    Column("categories", String(500), nullable=False),  # comma-separated category codes
    Column("legal_basis", String(32), nullable=False),
    Column("disclosed_on", Date, nullable=False),
    Column("reference", String(64)),  # a court order's reference
    Column("country", String(2), nullable=False),
    Column("safeguard", String(16)),  # for a transfer outside the UK and the EEA
    Column("source", String(120), nullable=False, unique=True),  # form:<run> or file:<digest>:<row>
    Column("recorded_at", UTCDateTime, nullable=False),
)

# The identities a request was made with (email, phone, ...), encrypted under the request's own key
# in the key store, so that shredding it removes them once the request's record may go.
request_identity = Table(
    "request_identity", vault_metadata,
    Column("request_id", ForeignKey("rights_request.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

# Every vault subject a request's identities led to when it arrived (an email and a phone may lead to
# two people): purges hold off all of them while the request is open (DPA 2018 s.173).
request_subject = Table(
    "request_subject", vault_metadata,
    Column("request_id", ForeignKey("rights_request.id"), primary_key=True),
    Column("subject_id", ID, primary_key=True, index=True),
    sqlite_with_rowid=False,
)

# Rows a request's search held back for staff to decide (a value another owner holds too, a row
# another owner owns): where they are and why, never their contents.
possible_match = Table(
    "possible_match", vault_metadata,
    Column("request_id", ForeignKey("rights_request.id"), primary_key=True),
    Column("store", String(64), primary_key=True),
    Column("table_name", String(128), primary_key=True),
    Column("row_key", String(200), primary_key=True),
    Column("reason", String(500), nullable=False),
    Column("found_at", UTCDateTime, nullable=False),
)

audit_event = Table(
    "audit_event", vault_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("controller_id", String(64)),
    Column("subject_id", ID),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

def _chain_head(name: str, metadata: MetaData) -> Table:
    """One row naming the audit chain's newest event (sequence and hash), MAC'd."""
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("seq", Integer, nullable=False),
        Column("hash", String(64), nullable=False),
        Column("mac", String(64), nullable=False),
    )


# The chain's head, MAC'd: removing the newest events shows as a head that no event matches.
audit_head = _chain_head("audit_head", vault_metadata)

keystore_metadata = MetaData()

# The key store's own facts: above all the version of the KEK new data keys are wrapped under, so
# that every process wraps under the same one, whatever keyring it loaded before a rotation.
key_store_meta = Table(
    "key_store_meta", keystore_metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

data_key = Table(
    "data_key", keystore_metadata,
    Column("subject_id", ID, primary_key=True),
    # Not indexed: only a key rotation reads by version, and it reads them all.
    Column("kek_version", Integer, nullable=False),
    Column("wrapped", LargeBinary(length=255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

# The audit chain's head as the vault last committed it (include/vault/audit.py), MAC'd, in the key store so
# that it is not in the vault: a vault whose newest events were deleted and an older head row put
# back, or that was restored from a backup, names an earlier head than this one.
audit_anchor = _chain_head("audit_anchor", keystore_metadata)
