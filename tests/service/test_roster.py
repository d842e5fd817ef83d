"""`wg members import | export` and `wg audit`: the member list as a coordinator's spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from service.cli import cli
from service.models import (
    AuditEvent,
    Contact,
    ContactStatus,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
    Suppression,
)

BOM = "\ufeff"
HEADER = "organization,name,email,language,role,phone"
WG = str(Path(sys.executable).parent / "wg")


def write_csv(path: Path, lines: list[str], *, bom: bool = True, newline: str = "\r\n") -> Path:
    path.write_bytes(((BOM if bom else "") + newline.join(lines) + newline).encode("utf-8"))
    return path


def wg(app, *args: str):
    return app.test_cli_runner().invoke(cli, list(args))


def stored_contacts(db) -> dict[str, tuple]:
    """email -> (organisation, name, language, role, phone, status), read afresh."""
    rows = db.execute(
        select(
            Contact.email,
            Organisation.name,
            Contact.name,
            Contact.language,
            Contact.role,
            Contact.phone,
            Contact.status,
        ).join(Organisation, Contact.organisation_id == Organisation.id)
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def stored_organisations(db) -> dict[str, tuple]:
    rows = db.execute(select(Organisation.name, Organisation.kind, Organisation.status))
    return {name: (kind, status) for name, kind, status in rows}


def suppressed(db) -> dict[str, str]:
    return dict(db.execute(select(Suppression.email, Suppression.reason)).all())


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


MESSY = [
    HEADER + ",kind",  # line 1
    "សមាគមជនរងគ្រោះ,សុខ ចន្ទា,Chanda@Assoc.Example,ខ្មែរ,ប្រធាន,០១២ ៣៤៥ ៦៧៨,",  # 2
    " Riverbank Survivors Network , Amara Keo ,amara@riverbank.example,English,,,",  # 3
    'Riverbank Survivors Network,"Dara\r\nSok",dara@riverbank.example,en,,,',  # 4-5
    "Riverbank Survivors Network,Dara,dara@,en,,,",  # 6
    "Riverbank Survivors Network,Vuthy,vuthy@riverbank.example,fr,,,",  # 7
    "Riverbank Survivors Network,,nameless@riverbank.example,en,,,",  # 8
    "",  # 9: a blank line is no row
    "Legal Aid Cre\u0301dit,Bopha,bopha@legal.example,KM,lawyer,,institution",  # 10
    "Riverbank Survivors Network,Amara again,AMARA@riverbank.example,en,,,",  # 11
    f"Riverbank Survivors Network,{'x' * 201},long@riverbank.example,en,,,",  # 12
    "Riverbank Survivors Network,Ratha,ratha@riverbank.example,en,,,club",  # 13
    "Riverbank Survivors Network,Tab\tby,tab@riverbank.example,en,,,",  # 14
]


def test_import_stores_good_rows_and_reports_each_bad_line_with_its_reason(app, db, tmp_path):
    result = wg(app, "members", "import", str(write_csv(tmp_path / "members.csv", MESSY)))

    assert result.exit_code == 1, result.output  # the good rows are in, but not all
    assert result.stdout.splitlines() == [
        "lines 4-5: line break in name",
        'line 6: invalid email "dara@": There must be something after the @-sign',
        'line 7: language "fr" is not en or km',
        "line 8: name is empty",
        'line 11: duplicate email "amara@riverbank.example" (first on line 3)',
        "line 12: name is longer than 200 characters",
        'line 13: kind "club" is not organisation, institution or individual',
        "line 14: control character in name",
        "organisations: created 3, updated 0",
        "created 3, updated 0, unchanged 0, skipped 0 (suppressed), errors 8",
    ]
    assert stored_contacts(db) == {
        "chanda@assoc.example": (
            "សមាគមជនរងគ្រោះ",
            "សុខ ចន្ទា",
            "km",
            "ប្រធាន",
            "012 345 678",  # Khmer digits kept as dialers expect them
            ContactStatus.ACTIVE,
        ),
        "amara@riverbank.example": (
            "Riverbank Survivors Network",
            "Amara Keo",
            "en",
            "",
            "",
            ContactStatus.ACTIVE,
        ),
        "bopha@legal.example": ("Legal Aid Crédit", "Bopha", "km", "lawyer", "", "active"),
    }
    assert stored_organisations(db)["Legal Aid Crédit"] == (
        OrganisationKind.INSTITUTION,
        OrganisationStatus.ACTIVE,
    )
    actions = db.execute(
        select(AuditEvent.action, AuditEvent.actor).where(AuditEvent.action.like("contact.%"))
    ).all()
    assert actions == [("contact.imported", "import")] * 3


def test_reimport_changes_nothing_and_counts_every_contact_unchanged(app, db, tmp_path):
    path = write_csv(tmp_path / "members.csv", MESSY)
    wg(app, "members", "import", str(path))
    before = stored_contacts(db)

    again = wg(app, "members", "import", str(path))

    assert summary(again.stdout) == (
        "created 0, updated 0, unchanged 3, skipped 0 (suppressed), errors 8"
    )
    assert "organisations:" not in again.stdout
    assert stored_contacts(db) == before
    assert db.scalar(select(func.count()).select_from(Contact)) == 3
    assert db.scalar(select(func.count()).select_from(Organisation)) == 3


def test_import_updates_a_known_email_in_place(app, db, tmp_path, make_member):
    make_member("amara@riverbank.example", name="Amara", organisation="Old Name")
    path = write_csv(
        tmp_path / "members.csv",
        [HEADER, "New Network,Amara Keo,amara@riverbank.example,km,coordinator,+855 12 345 678"],
    )

    result = wg(app, "members", "import", str(path))

    assert summary(result.stdout) == (
        "created 0, updated 1, unchanged 0, skipped 0 (suppressed), errors 0"
    )
    assert stored_contacts(db) == {
        "amara@riverbank.example": (
            "New Network",
            "Amara Keo",
            "km",
            "coordinator",
            "+855 12 345 678",
            ContactStatus.ACTIVE,
        )
    }
    update = db.scalar(select(AuditEvent).where(AuditEvent.action == "contact.updated"))
    assert update.actor == "import"
    assert update.detail == {
        "line": 2,
        "fields": ["organisation", "name", "language", "role", "phone"],
    }


def test_missing_required_column_exits_2_and_imports_nothing(app, db, tmp_path):
    path = write_csv(
        tmp_path / "members.csv",
        ["Organisation,Name,E-mail,Language", "Riverbank,Amara,amara@riverbank.example,en"],
    )

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"wg: {path}: missing required column(s) email: the header row needs "
        "organization, name, email, language"
    ]
    assert db.scalar(select(func.count()).select_from(Organisation)) == 0
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_a_file_that_is_not_utf8_exits_2_with_a_hint(app, db, tmp_path):
    path = tmp_path / "members.csv"
    path.write_bytes(f"{HEADER}\r\nCafé Network,Amara,amara@cafe.example,en,,\r\n".encode("cp1252"))

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"wg: {path}: not UTF-8: save the file as CSV UTF-8 (first bad byte on line 2)"
    ]
    assert db.scalar(select(func.count()).select_from(Organisation)) == 0


def test_dry_run_stores_nothing_but_reports_the_same_counts(app, db, tmp_path, make_member):
    make_member("amara@riverbank.example", name="Amara")
    path = write_csv(tmp_path / "members.csv", MESSY)

    dry = wg(app, "members", "import", str(path), "--dry-run")

    assert dry.exit_code == 1  # as the real import: some lines have errors
    assert "dry run: nothing was stored" in dry.stdout
    assert db.scalar(select(func.count()).select_from(Contact)) == 1
    assert db.scalar(select(func.count()).select_from(Organisation)) == 1
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0

    real = wg(app, "members", "import", str(path))

    assert "dry run" not in real.stdout
    assert dry.stdout.replace("dry run: nothing was stored\n", "") == real.stdout
    assert summary(real.stdout) == (
        "created 2, updated 1, unchanged 0, skipped 0 (suppressed), errors 8"
    )
    assert db.scalar(select(func.count()).select_from(Contact)) == 3


def test_a_suppressed_address_is_not_reactivated(app, db, tmp_path, clock, make_member):
    make_member("left@riverbank.example", status=ContactStatus.UNSUBSCRIBED)
    make_member("bounced@riverbank.example", status=ContactStatus.BOUNCED)
    db.add(Suppression(email="listed@riverbank.example", reason="bounced", created_at=clock()))
    db.commit()
    path = write_csv(
        tmp_path / "members.csv",
        [
            HEADER,
            "Riverbank Survivors Network,Left,left@riverbank.example,en,,",
            "Riverbank Survivors Network,Bounced,bounced@riverbank.example,en,,",
            "Riverbank Survivors Network,Listed,Listed@riverbank.example,en,,",
            "Riverbank Survivors Network,New,new@riverbank.example,en,,",
        ],
    )

    result = wg(app, "members", "import", str(path))

    assert result.stdout.splitlines() == [
        'line 2: skipped: suppressed "left@riverbank.example"',
        'line 3: skipped: suppressed "bounced@riverbank.example"',
        'line 4: skipped: suppressed "listed@riverbank.example"',
        "created 1, updated 0, unchanged 0, skipped 3 (suppressed), errors 0",
    ]
    contacts = stored_contacts(db)
    assert contacts["left@riverbank.example"][-1] is ContactStatus.UNSUBSCRIBED
    assert contacts["bounced@riverbank.example"][-1] is ContactStatus.BOUNCED
    assert "listed@riverbank.example" not in contacts
    assert contacts["new@riverbank.example"][-1] is ContactStatus.ACTIVE


def test_a_status_column_unsubscribes_and_suppresses(app, db, tmp_path, make_member):
    make_member("amara@riverbank.example", name="Amara")
    path = write_csv(
        tmp_path / "members.csv",
        [
            HEADER + ",status",
            "Riverbank Survivors Network,Amara,amara@riverbank.example,en,,,unsubscribed",
            "Riverbank Survivors Network,Sok,sok@riverbank.example,en,,,bounced",
            "Riverbank Survivors Network,Vanna,vanna@riverbank.example,en,,,inactive",
            "Riverbank Survivors Network,Nary,nary@riverbank.example,en,,,gone",
        ],
    )

    result = wg(app, "members", "import", str(path))

    assert result.stdout.splitlines() == [
        'line 5: status "gone" is not active, inactive, unsubscribed or bounced',
        "created 2, updated 1, unchanged 0, skipped 0 (suppressed), errors 1",
    ]
    assert {email: row[-1] for email, row in stored_contacts(db).items()} == {
        "amara@riverbank.example": ContactStatus.UNSUBSCRIBED,
        "sok@riverbank.example": ContactStatus.BOUNCED,
        "vanna@riverbank.example": ContactStatus.INACTIVE,
    }
    assert suppressed(db) == {
        "amara@riverbank.example": "unsubscribed",
        "sok@riverbank.example": "bounced",
    }


def test_ten_thousand_rows_import_in_one_go(app, db, tmp_path):
    lines = [HEADER + ",kind"] + [
        f"សមាគម {i % 40},សុខ {i},member{i}@org{i % 40}.example,{'km' if i % 2 else 'en'},,,"
        for i in range(10_000)
    ]
    path = write_csv(tmp_path / "big.csv", lines)

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (
        "created 10000, updated 0, unchanged 0, skipped 0 (suppressed), errors 0"
    )
    assert "importing 10000 rows" in result.stderr  # the bar's label; no TTY, so no drawing
    assert "importing" not in result.stdout
    assert db.scalar(select(func.count()).select_from(Contact)) == 10_000
    assert db.scalar(select(func.count()).select_from(Organisation)) == 40
    imported = db.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "contact.imported")
    )
    assert imported == 10_000


def seed_mixed_membership(db, clock, make_member) -> None:
    """Khmer names, every contact status, an institution and an organisation without contacts."""
    make_member("chanda@assoc.example", name="សុខ ចន្ទា", language="km", organisation="សមាគម")
    make_member("amara@riverbank.example", name='Amara, "Ami" Keo', organisation="Riverbank")
    make_member(
        "left@riverbank.example", organisation="Riverbank", status=ContactStatus.UNSUBSCRIBED
    )
    make_member("idle@riverbank.example", organisation="Riverbank", status=ContactStatus.INACTIVE)
    db.add(Suppression(email="left@riverbank.example", reason="unsubscribed", created_at=clock()))
    db.add(
        Organisation(
            name="Quiet Institute",
            kind=OrganisationKind.INSTITUTION,
            status=OrganisationStatus.ACTIVE,
            created_at=clock(),
        )
    )
    db.commit()
    contact = db.scalar(select(Contact).where(Contact.email == "amara@riverbank.example"))
    contact.role, contact.phone = "coordinator", "+855 12 345 678"
    db.commit()


def test_exported_csv_opens_in_excel_and_imports_back_to_the_same_state(
    app, db, tmp_path, clock, make_member
):
    seed_mixed_membership(db, clock, make_member)
    contacts, organisations = stored_contacts(db), stored_organisations(db)
    suppressions = suppressed(db)

    exported = wg(app, "members", "export")

    assert exported.exit_code == 0, exported.output
    data = exported.stdout_bytes
    assert data.startswith(
        b"\xef\xbb\xbforganization,name,email,language,role,phone,kind,status\r\n"
    )
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert "សុខ ចន្ទា".encode() in data
    path = tmp_path / "export.csv"
    path.write_bytes(data)

    db.execute(delete(Contact))
    db.execute(delete(Organisation))
    db.execute(delete(Suppression))
    db.commit()
    reimported = wg(app, "members", "import", str(path))

    assert summary(reimported.stdout) == (
        "created 4, updated 0, unchanged 0, skipped 0 (suppressed), errors 0"
    )
    assert stored_contacts(db) == contacts
    assert stored_organisations(db) == organisations
    assert suppressed(db) == suppressions  # the unsubscribed stay unsubscribed


def test_export_to_a_file_as_json_lists_every_field(app, db, tmp_path, clock, make_member):
    seed_mixed_membership(db, clock, make_member)
    output = tmp_path / "members.json"

    result = wg(app, "members", "export", "--format", "json", "--output", str(output))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = output.read_text(encoding="utf-8")
    assert "សុខ ចន្ទា" in text  # not \u escapes
    rows = json.loads(text)
    assert rows[0] == {
        "organization": "Quiet Institute",
        "name": "",
        "email": "",
        "language": "",
        "role": "",
        "phone": "",
        "kind": "institution",
        "status": "",
        "organization_status": "active",
    }
    assert [(r["organization"], r["email"], r["status"]) for r in rows[1:]] == [
        ("Riverbank", "amara@riverbank.example", "active"),
        ("Riverbank", "left@riverbank.example", "unsubscribed"),
        ("Riverbank", "idle@riverbank.example", "inactive"),
        ("សមាគម", "chanda@assoc.example", "active"),
    ]
    amara = rows[1]
    assert (amara["name"], amara["role"], amara["phone"], amara["language"]) == (
        'Amara, "Ami" Keo',
        "coordinator",
        "+855 12 345 678",
        "en",
    )
    as_csv = list(csv.DictReader(io.StringIO(wg(app, "members", "export").stdout.lstrip(BOM))))
    assert [dict(row) for row in as_csv] == [
        {k: v for k, v in row.items() if k != "organization_status"} for row in rows
    ]


def test_audit_lists_the_import_events_oldest_first_and_since_filters(app, db, tmp_path, clock):
    first = write_csv(
        tmp_path / "first.csv", [HEADER, "Riverbank,Amara,amara@riverbank.example,en,,"]
    )
    wg(app, "members", "import", str(first))
    clock.advance(hours=2)  # 02:00 -> 04:00 UTC, 09:00 -> 11:00 in Phnom Penh
    second = write_csv(
        tmp_path / "second.csv",
        [
            HEADER,
            "Riverbank,Amara Keo,amara@riverbank.example,en,,",
            "Riverbank,Sok,sok@r.example,km,,",
        ],
    )
    wg(app, "members", "import", str(second))
    amara = db.scalar(select(Contact.id).where(Contact.email == "amara@riverbank.example"))

    everything = json.loads(wg(app, "audit", "--json").stdout)

    assert [(e["action"], e["subject_type"], e["actor"]) for e in everything] == [
        ("organisation.created", "organisation", "import"),
        ("contact.imported", "contact", "import"),
        ("members.imported", "roster", "import"),
        ("contact.updated", "contact", "import"),
        ("contact.imported", "contact", "import"),
        ("members.imported", "roster", "import"),
    ]
    assert everything[1]["subject_id"] == amara
    assert everything[1]["at"] == "2026-12-01T02:00:00+00:00"
    assert everything[3]["detail"] == {"line": 2, "fields": ["name"]}
    assert everything[5]["detail"]["created"] == 1 and everything[5]["detail"]["updated"] == 1

    local_since = json.loads(wg(app, "audit", "--json", "--since", "2026-12-01T10:00").stdout)
    utc_since = json.loads(wg(app, "audit", "--json", "--since", "2026-12-01T03:00Z").stdout)
    assert local_since == utc_since == everything[3:]

    lines = wg(app, "audit", "--since", "2026-12-01T10:00").stdout.splitlines()
    assert lines[0] == (
        f"2026-12-01T11:00:00+07:00  contact.updated  contact {amara}  import  "
        '{"fields": ["name"], "line": 2}'
    )
    bad = wg(app, "audit", "--since", "yesterday")
    assert bad.exit_code == 2 and "'yesterday' is not an ISO date and time" in bad.stderr


def test_the_wg_console_script_imports_exports_and_lists_the_audit(tmp_path):
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_DATABASE_URL": f"sqlite:///{tmp_path / 'wg.sqlite3'}",
        "WG_SECRET_KEY": "test",
    }

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [WG, *args], env=environment, capture_output=True, timeout=60, cwd=tmp_path
        )

    assert run("db", "upgrade").returncode == 0
    members = write_csv(
        tmp_path / "members.csv",
        [HEADER, "សមាគម,សុខ ចន្ទា,chanda@assoc.example,km,,", "Riverbank,Dara,dara@,en,,"],
    )

    imported = run("members", "import", str(members))
    exported = run("members", "export")
    missing = run("members", "import", str(write_csv(tmp_path / "bad.csv", ["name,email"])))
    audit = run("audit", "--json")

    assert imported.returncode == 1, imported.stderr  # line 3 has an error
    assert imported.stdout.decode().splitlines() == [
        'line 3: invalid email "dara@": There must be something after the @-sign',
        "organisations: created 1, updated 0",
        "created 1, updated 0, unchanged 0, skipped 0 (suppressed), errors 1",
    ]
    assert (
        exported.stdout
        == (
            f"{BOM}organization,name,email,language,role,phone,kind,status\r\n"
            "សមាគម,សុខ ចន្ទា,chanda@assoc.example,km,,,organisation,active\r\n"
        ).encode()
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1
    assert "missing required column(s) organization, language" in missing.stderr.decode()
    assert [e["action"] for e in json.loads(audit.stdout)] == [
        "organisation.created",
        "contact.imported",
        "members.imported",
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("organization;name;email;language", "separated by semicolons or tabs"),
        ("organisation,Organization,name,email,language", 'column "organization" appears twice'),
    ],
)
def test_an_unusable_header_is_one_clear_line(app, tmp_path, header, expected):
    result = wg(app, "members", "import", str(write_csv(tmp_path / "m.csv", [header])))

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and expected in result.stderr


def test_lines_are_counted_physically_and_a_shifted_row_is_an_error():
    from service.membership.roster import parse_roster

    parsed = parse_roster(
        b'organization,name,email,language\n"Org\nwith break",A,a@x.example,en\n'
        b"Org,B,b@x.example,xx\n"
        b"Org,Keo, Amara,d@x.example,en,\n"
        b"Org,C,c@x.example,en,,\n"  # empty cells past the header are harmless
    )

    assert [str(p) for p in parsed.problems] == [
        "lines 2-3: line break in organization",
        'line 4: language "xx" is not en or km',
        "line 5: 6 cells but the header has 4 (put a value that contains a comma in double quotes)",
    ]
    assert [row.email for row in parsed.rows] == ["c@x.example"]


def test_a_crash_midway_stores_nothing(app, db, tmp_path, monkeypatch):
    from service.membership import roster

    monkeypatch.setattr(roster, "BATCH_SIZE", 1)
    real_batch = roster._Importer.batch
    batches = []

    def batch_then_crash(self, rows):
        batches.append(rows)
        if len(batches) == 2:
            raise RuntimeError("disk full")
        real_batch(self, rows)

    monkeypatch.setattr(roster._Importer, "batch", batch_then_crash)
    path = write_csv(
        tmp_path / "members.csv",
        [
            HEADER,
            "Riverbank,Amara,amara@riverbank.example,en,,",
            "Riverbank,Sok,sok@r.example,en,,",
        ],
    )

    result = wg(app, "members", "import", str(path))

    assert isinstance(result.exception, RuntimeError)
    assert len(batches) == 2  # the first batch was flushed before the crash
    assert db.scalar(select(func.count()).select_from(Organisation)) == 0
    assert db.scalar(select(func.count()).select_from(Contact)) == 0
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\r\n\r\n"])
def test_an_empty_file_exits_2(app, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 2
    assert result.stderr == (
        f"wg: {path}: the file is empty: the first row must name the columns "
        "organization, name, email, language\n"
    )
