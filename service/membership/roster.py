"""The member list as a spreadsheet: CSV import and export, and the audit listing.

Coordinators keep members in spreadsheets, so the list comes in and goes out as CSV
(UTF-8, Excel's BOM and CRLF included). Parsing is pure: it turns the file's bytes into
checked rows and per-line problems. The import then upserts contacts by email in batches,
never re-activates a suppressed address, and flushes; the caller commits or rolls back.
An exported cell that a spreadsheet would run as a formula gets a leading apostrophe
(OWASP's advice against CSV injection), which the import takes off again.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from email_validator import EmailNotValidError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from emails.text import has_control_characters
from forms.validators import (
    NonAsciiMailbox,
    is_phone_number,
    mailable_address,
    normalise_phone,
    normalise_text,
)
from service import audit
from service.db import insert_ignoring_duplicates
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    Language,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
    Suppression,
)
from service.outbox import SUPPRESSED_STATUSES

REQUIRED_COLUMNS = ("organization", "name", "email", "language")
OPTIONAL_COLUMNS = ("role", "phone", "kind", "status")
EXPORT_COLUMNS = ("organization", "name", "email", "language", "role", "phone", "kind", "status")
COLUMN_ALIASES = {"organisation": "organization"}

LANGUAGES = {
    "en": Language.EN,
    "english": Language.EN,
    "អង់គ្លេស": Language.EN,
    "ភាសាអង់គ្លេស": Language.EN,
    "km": Language.KM,
    "kh": Language.KM,
    "khmer": Language.KM,
    "ខ្មែរ": Language.KM,
    "ភាសាខ្មែរ": Language.KM,
}
KINDS = {kind.value: kind for kind in OrganisationKind} | {
    "organization": OrganisationKind.ORGANISATION
}
STATUSES = {status.value: status for status in ContactStatus}

# What the database columns hold, so a long cell is a clear line rather than a crash.
def _length(column: Any) -> int:
    return int(column.type.length)


LIMITS = {
    "organization": _length(Organisation.__table__.c.name),
    "name": _length(Contact.__table__.c.name),
    "email": _length(Contact.__table__.c.email),
    "role": _length(Contact.__table__.c.role),
    "phone": _length(Contact.__table__.c.phone),
}

_LINE_BREAK = re.compile("[\r\n\u2028\u2029\x85]")

_T = TypeVar("_T")
BATCH_SIZE = 1000  # rows per round of queries and flush

# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Why a line cannot be read as CSV, by the csv module's message (strict mode).
_UNREADABLE = {
    "unexpected end of data": "a double quote opened on this line is never closed",
    "',' expected after '\"'": "text after the closing double quote of a value",
}
_QUOTE_HINT = '(inside a quoted value, write a double quote twice: "")'


class RosterFileError(ValueError):
    """The file cannot be used at all (not UTF-8, missing columns); one line says why."""


@dataclass(frozen=True)
class RowProblem:
    """A line (or the lines of one record) of the file that was not imported, and why."""

    line: int
    message: str
    skipped: bool = False  # a deliberate skip (suppressed address), not an error
    last_line: int = 0  # where a record with a quoted line break ends

    def __str__(self) -> str:
        if self.last_line > self.line:
            return f"lines {self.line}-{self.last_line}: {self.message}"
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class RosterRow:
    """One checked line: an organisation and, unless the contact cells are all empty, a contact.

    role, phone, kind and status are None when the file has no such column (or, for kind
    and status, an empty cell): the import then keeps what is stored.
    """

    line: int
    organisation: str
    name: str = ""
    email: str = ""
    language: Language | None = None
    role: str | None = None
    phone: str | None = None
    kind: OrganisationKind | None = None
    status: ContactStatus | None = None

    @property
    def has_contact(self) -> bool:
        return bool(self.email)


@dataclass
class Roster:
    """A parsed file: the rows that can be imported and the lines that cannot."""

    rows: list[RosterRow]
    problems: list[RowProblem]
    columns: tuple[str, ...]
    ignored_columns: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """What an import did (or, rolled back, would do), counted per contact."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    organisations_created: int = 0
    organisations_updated: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for problem in self.problems if not problem.skipped)

    def summary(self) -> str:
        return (
            f"created {self.created}, updated {self.updated}, unchanged {self.unchanged}, "
            f"skipped {self.skipped} (suppressed), errors {self.errors}"
        )

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": self.errors,
            "organisations_created": self.organisations_created,
            "organisations_updated": self.organisations_updated,
        }


def _shown(value: str, limit: int = 60) -> str:
    return '"' + (value if len(value) <= limit else value[: limit - 1] + "…") + '"'


# --- parsing -------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RosterFileError(
            f"not UTF-8: save the file as CSV UTF-8 (first bad byte on line {line})"
        ) from None


def _records(text: str) -> Iterator[tuple[int, int, list[str] | str]]:
    """(first line, last line, cells) of each record, or why it cannot be read instead of
    its cells. A quoted line break makes a record span lines; after a quote that is never
    closed, reading goes on from the line after the one it was opened on."""
    lines = io.StringIO(text, newline="").readlines()
    start = 0  # lines before the one the reader begins with
    while start < len(lines):
        reader = csv.reader(lines[start:], strict=True)
        done = start  # lines taken by the records read so far
        while True:
            try:
                cells: list[str] | str = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                reason = _UNREADABLE.get(str(exc))
                cells = f"{reason} {_QUOTE_HINT}" if reason else f"cannot be read as CSV ({exc})"
                if str(exc) == "unexpected end of data":  # the quote swallowed the rest
                    yield done + 1, done + 1, cells
                    start = done + 1
                    break
            yield done + 1, start + reader.line_num, cells
            done = start + reader.line_num


def _header(cells: list[str]) -> tuple[dict[str, int], tuple[str, ...]]:
    """Column name -> index for the known columns, and the names of the ignored ones."""
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        name = normalise_text(cell).lower()
        name = COLUMN_ALIASES.get(name, name)
        if not name:
            continue
        if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
            ignored.append(name)
            continue
        if name in positions:
            raise RosterFileError(f'column "{name}" appears twice in the header row')
        positions[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in positions]
    if missing:
        hint = ""
        if len(cells) == 1 and (";" in cells[0] or "\t" in cells[0]):
            hint = " (the file looks separated by semicolons or tabs: save it as CSV UTF-8)"
        raise RosterFileError(
            f"missing required column(s) {', '.join(missing)}: the header row needs "
            f"{', '.join(REQUIRED_COLUMNS)}{hint}"
        )
    return positions, tuple(ignored)


def _check_row(line: int, values: dict[str, str], columns: dict[str, int]) -> RosterRow | list[str]:
    """A checked row, or the reasons it cannot be imported."""
    reasons = _unsafe_cells(values)
    if reasons:  # the other checks would only echo the unsafe value back
        return reasons
    reasons = [
        f"{name} is longer than {limit} characters"
        for name, limit in LIMITS.items()
        if len(values.get(name, "")) > limit
    ]
    organisation = values["organization"]
    if not organisation:
        reasons.append("organization is empty")
    kind = _one_of(values, "kind", KINDS, "organisation, institution or individual", reasons)
    if not any(values.get(name) for name in ("name", "email", "language", "role", "phone")):
        # An organisation without contacts, as export writes it.
        return reasons or RosterRow(line=line, organisation=organisation, kind=kind)
    if not values["name"]:
        reasons.append("name is empty")
    email = _email(values["email"], reasons) if values["email"] else ""
    if not values["email"]:
        reasons.append("email is empty")
    language = LANGUAGES.get(values["language"].casefold())
    if language is None and values["language"]:
        reasons.append(f"language {_shown(values['language'])} is not en or km")
    elif language is None:
        reasons.append("language is empty")
    status = _one_of(
        values, "status", STATUSES, "active, inactive, unsubscribed or bounced", reasons
    )
    if reasons:
        return reasons
    return RosterRow(
        line=line,
        organisation=organisation,
        name=values["name"],
        email=email,
        language=language,
        role=values["role"] if "role" in columns else None,
        phone=normalise_phone(values["phone"]) if "phone" in columns else None,
        kind=kind,
        status=status,
    )


def _unsafe_cells(values: dict[str, str]) -> list[str]:
    """Line breaks and control characters, which would end up in mail headers."""
    reasons = []
    for name, value in values.items():
        if _LINE_BREAK.search(value):
            reasons.append(f"line break in {name}")
        elif has_control_characters(value) or "\t" in value:
            reasons.append(f"control character in {name}")
    return reasons


def _one_of(
    values: dict[str, str], column: str, allowed: dict[str, _T], names: str, reasons: list[str]
) -> _T | None:
    """The value of an optional column that must be one of `allowed` (case aside)."""
    given = values.get(column, "")
    if not given:
        return None
    found = allowed.get(given.lower())
    if found is None:
        reasons.append(f"{column} {_shown(given)} is not {names}")
    return found


def _email(value: str, reasons: list[str]) -> str:
    try:
        return mailable_address(value)
    except EmailNotValidError as exc:
        reasons.append(f"invalid email {_shown(value)}: {str(exc).rstrip('.')}")
    except NonAsciiMailbox:
        reasons.append(f"invalid email {_shown(value)}: the part before the @ is not ASCII")
    return ""


def parse_roster(data: bytes) -> Roster:
    """Check a CSV file's bytes line by line; RosterFileError when the file is unusable.

    Every line that is not imported is in `problems`, a line that cannot be read as CSV too.
    """
    records = _records(_decode(data))
    first = next(records, None)
    header = first[2] if first is not None else []
    if isinstance(header, str):
        raise RosterFileError(f"line 1: {header}")
    if not any(cell.strip() for cell in header):
        raise RosterFileError(
            f"the file is empty: the first row must name the columns {', '.join(REQUIRED_COLUMNS)}"
        )
    columns, ignored = _header(header)

    rows: list[RosterRow] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}  # email -> line it first appeared on
    for line, last_line, cells in records:
        if isinstance(cells, str):
            problems.append(RowProblem(line, cells, last_line=last_line))
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, and Excel's rows of empty cells
        values = {
            name: from_spreadsheet(normalise_text(cells[index])) if index < len(cells) else ""
            for name, index in columns.items()
        }
        checked = _check_row(line, values, columns)
        if any(cell.strip() for cell in cells[len(header) :]):
            # An unquoted comma shifts every later cell into the wrong column.
            checked = [
                f"{len(cells)} cells but the header has {len(header)} "
                "(put a value that contains a comma in double quotes)"
            ]
        elif isinstance(checked, RosterRow) and checked.email:
            seen_on = first_line.setdefault(checked.email, line)
            if seen_on != line:
                checked = [f"duplicate email {_shown(checked.email)} (first on line {seen_on})"]
        elif isinstance(checked, list):
            # A bad row still claims its address, so fixing it later changes nothing else.
            email = values["email"].lower()
            if email and not has_control_characters(email):
                first_line.setdefault(email, line)
        if isinstance(checked, list):
            problems.append(RowProblem(line, "; ".join(checked), last_line=last_line))
        else:
            rows.append(checked)
    rows, kind_problems = _consistent_kinds(rows)
    problems.extend(kind_problems)
    problems.sort(key=lambda problem: problem.line)
    return Roster(
        rows=rows,
        problems=problems,
        columns=tuple(name for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in columns),
        ignored_columns=ignored,
    )


def _consistent_kinds(rows: list[RosterRow]) -> tuple[list[RosterRow], list[RowProblem]]:
    """One organisation has one kind: a later row that names another is an error."""
    kinds: dict[str, tuple[OrganisationKind, int]] = {}
    kept: list[RosterRow] = []
    problems: list[RowProblem] = []
    for row in rows:
        if row.kind is not None:
            kind, line = kinds.setdefault(row.organisation, (row.kind, row.line))
            if kind is not row.kind:
                problems.append(
                    RowProblem(
                        row.line,
                        f'kind "{row.kind.value}" differs from "{kind.value}" on line {line} '
                        f"for {_shown(row.organisation)}",
                    )
                )
                continue
        kept.append(row)
    return kept, problems


# --- import --------------------------------------------------------------------------------


def _chunks(rows: Sequence[RosterRow], size: int) -> Iterator[Sequence[RosterRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


class _Importer:
    """The state one import carries from batch to batch."""

    def __init__(self, db: Session, roster: Roster, *, now: datetime, actor: str) -> None:
        self.db = db
        self.now = now
        self.actor = actor
        self.report = ImportReport(problems=list(roster.problems))
        # Organisations are few (tens): load them all once, keyed by their cleaned name.
        self.organisations: dict[str, Organisation] = {}
        for organisation in db.scalars(select(Organisation).order_by(Organisation.id)):
            self.organisations.setdefault(normalise_text(organisation.name), organisation)
        self.kinds = {row.organisation: row.kind for row in roster.rows if row.kind is not None}
        self.touched_organisations: set[str] = set()
        self.events: list[tuple[str, Any, dict[str, Any]]] = []

    def organisation(self, row: RosterRow) -> Organisation:
        name = row.organisation
        organisation = self.organisations.get(name)
        if organisation is None:
            organisation = Organisation(
                name=name,
                kind=self.kinds.get(name, OrganisationKind.ORGANISATION),
                status=OrganisationStatus.ACTIVE,
                created_at=self.now,
            )
            self.db.add(organisation)
            self.organisations[name] = organisation
            self.touched_organisations.add(name)
            self.report.organisations_created += 1
            self.events.append(("organisation.created", organisation, {"line": row.line}))
        elif name not in self.touched_organisations:
            self.touched_organisations.add(name)
            kind = self.kinds.get(name)
            if kind is not None and organisation.kind is not kind:
                organisation.kind = kind
                self.report.organisations_updated += 1
                self.events.append(
                    ("organisation.updated", organisation, {"line": row.line, "fields": ["kind"]})
                )
        return organisation

    def batch(self, rows: Sequence[RosterRow]) -> None:
        emails = [row.email for row in rows if row.has_contact]
        contacts = {
            contact.email: contact
            for contact in self.db.scalars(select(Contact).where(Contact.email.in_(emails)))
        }
        suppressed = set(
            self.db.scalars(select(Suppression.email).where(Suppression.email.in_(emails)))
        )
        for row in rows:
            organisation = self.organisation(row)
            if row.has_contact:
                self.contact(row, organisation, contacts.get(row.email), row.email in suppressed)
        self.db.flush()
        for action, subject, detail in self.events:
            audit.record(self.db, action, subject, at=self.now, actor=self.actor, **detail)
        self.events.clear()

    def contact(
        self,
        row: RosterRow,
        organisation: Organisation,
        contact: Contact | None,
        on_suppression_list: bool,
    ) -> None:
        target = row.status or ContactStatus.ACTIVE
        wants_suppressed = target in SUPPRESSED_STATUSES
        is_suppressed = on_suppression_list or (
            contact is not None and contact.status in SUPPRESSED_STATUSES
        )
        if is_suppressed and not wants_suppressed:
            # Only the person themselves (a confirmed join request) lifts a suppression.
            self.report.skipped += 1
            self.report.problems.append(
                RowProblem(row.line, f"skipped: suppressed {_shown(row.email)}", skipped=True)
            )
            return
        if contact is not None and contact.status in SUPPRESSED_STATUSES and wants_suppressed:
            target = contact.status  # keep what was recorded (a bounce stays a bounce)

        if contact is None:
            contact = Contact(
                email=row.email,
                organisation=organisation,
                name=row.name,
                role=row.role or "",
                phone=row.phone or "",
                language=row.language,
                status=target,
                created_at=self.now,
            )
            self.db.add(contact)
            self.report.created += 1
            detail: dict[str, Any] = {"line": row.line}
            if target is not ContactStatus.ACTIVE:
                detail["status"] = target.value
            self.events.append(("contact.imported", contact, detail))
        else:
            changed = self._update(contact, row, organisation, target)
            if wants_suppressed and not on_suppression_list:
                changed.append("suppression")
            if changed:
                self.report.updated += 1
                self.events.append(
                    ("contact.updated", contact, {"line": row.line, "fields": changed})
                )
            else:
                self.report.unchanged += 1
        if wants_suppressed and not on_suppression_list:
            insert_ignoring_duplicates(
                self.db,
                Suppression,
                ("email",),
                dict(email=row.email, reason=target.value, created_at=self.now),
            )

    @staticmethod
    def _update(
        contact: Contact, row: RosterRow, organisation: Organisation, status: ContactStatus
    ) -> list[str]:
        """Apply the row to a stored contact; the names of the fields that changed."""
        changed: list[str] = []
        if organisation.id is None or contact.organisation_id != organisation.id:
            contact.organisation = organisation
            changed.append("organisation")
        wanted = {"name": row.name, "language": row.language, "status": status}
        if row.role is not None:
            wanted["role"] = row.role
        if row.phone is not None:
            wanted["phone"] = row.phone
        for name, value in wanted.items():
            if getattr(contact, name) != value:
                setattr(contact, name, value)
                changed.append(name)
        return changed


def import_roster(
    db: Session,
    roster: Roster,
    *,
    now: datetime,
    actor: str = "import",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert the roster's organisations and contacts by email, and flush.

    Each created or updated contact gets an audit event, and the import one summary event
    with the counts. Work goes in batches of BATCH_SIZE rows: a few queries and one flush
    per batch, not a query per row. `progress` is told how many rows each batch covered.
    """
    importer = _Importer(db, roster, now=now, actor=actor)
    for rows in _chunks(roster.rows, BATCH_SIZE):
        importer.batch(rows)
        if progress is not None:
            progress(len(rows))
    report = importer.report
    report.problems.sort(key=lambda problem: problem.line)
    db.add(
        AuditEvent(
            at=now,
            action="members.imported",
            subject_type="roster",
            subject_id=None,
            actor=actor,
            detail=report.counts(),
        )
    )
    db.flush()
    return report


# --- export --------------------------------------------------------------------------------


def export_rows(db: Session) -> list[dict[str, str]]:
    """Every organisation and contact (all statuses), one row per contact.

    An organisation without contacts gets a row with empty contact cells, which import
    reads back as that organisation alone.
    """
    organisations = sorted(
        db.scalars(select(Organisation).options(selectinload(Organisation.contacts))),
        # In Python, not SQL, so the order is the same on every database's collation.
        key=lambda organisation: (normalise_text(organisation.name).casefold(), organisation.id),
    )
    rows: list[dict[str, str]] = []
    for organisation in organisations:
        common = {
            "organization": organisation.name,
            "kind": organisation.kind.value,
            "organization_status": organisation.status.value,
        }
        if not organisation.contacts:
            rows.append(dict.fromkeys(EXPORT_COLUMNS, "") | common)
        for contact in organisation.contacts:
            rows.append(
                {
                    "organization": organisation.name,
                    "name": contact.name,
                    "email": contact.email,
                    "language": contact.language.value,
                    "role": contact.role,
                    "phone": contact.phone,
                    "status": contact.status.value,
                }
                | common
            )
    return rows


def _is_formula(value: str) -> bool:
    """Whether a spreadsheet would run `value`: it starts with one of FORMULA_STARTS and is
    not a phone number, whose digits and separators make no function or reference."""
    return value.startswith(FORMULA_STARTS) and not is_phone_number(value)


def to_spreadsheet(value: str) -> str:
    """`value` as a CSV cell that no spreadsheet runs: an apostrophe before a formula.

    A value that already starts with apostrophes before a formula gets one more, so that
    from_spreadsheet() always gives back exactly `value`.
    """
    return "'" + value if _is_formula(value.lstrip("'")) else value


def from_spreadsheet(cell: str) -> str:
    """The value that to_spreadsheet() wrote as `cell`."""
    return cell[1:] if cell.startswith("'") and _is_formula(cell.lstrip("'")) else cell


def export_csv(rows: list[dict[str, str]]) -> bytes:
    """UTF-8 with a BOM (so Excel shows Khmer) and CRLF line ends, Excel's own dialect;
    no cell is a formula (see to_spreadsheet)."""
    buffer = io.StringIO(newline="")
    buffer.write("\ufeff")
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(
        {name: to_spreadsheet(row.get(name, "")) for name in EXPORT_COLUMNS} for row in rows
    )
    return buffer.getvalue().encode("utf-8")


def export_json(rows: list[dict[str, str]]) -> bytes:
    ordered = [
        {name: row[name] for name in (*EXPORT_COLUMNS, "organization_status")} for row in rows
    ]
    return (json.dumps(ordered, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- audit ---------------------------------------------------------------------------------


def audit_events(db: Session, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Audit events oldest first, optionally from `since` (an aware time) on."""
    query = select(AuditEvent).order_by(AuditEvent.at, AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return [
        {
            "at": event.at.isoformat(),
            "action": event.action,
            "subject_type": event.subject_type,
            "subject_id": event.subject_id,
            "actor": event.actor,
            "detail": event.detail,
        }
        for event in db.scalars(query)
    ]
