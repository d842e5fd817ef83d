"""Hostile input, generated: never a 5xx, nothing stored on refusal, no line break in a header.

Hypothesis throws random Unicode (control characters, CR/LF, line separators), very long
values, wrong methods and wrong content types at the public pages and at the CSV import.
Whatever gets through ends up in real mail, which the tests deliver to the test SMTP server
and read back byte by byte.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import func, select

from service.cli import cli
from service.models import (
    AuditEvent,
    Contact,
    Invitation,
    JoinRequest,
    Organisation,
    OutboundEmail,
    Suppression,
    Token,
)
from tests.mail import ReceivedMail
from tests.service.test_meetings import add_meeting, local
from tests.web import csrf_token, join_form, submit_join_form

# A failing example with a 40,000-character value is reported anyway; without this, the
# warning about its long repr (an error here) would hide the failure itself.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

# Hypothesis keeps caches in ./.hypothesis unless told otherwise: keep the working tree clean.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "wg-mailer-hypothesis")

EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    database=None,  # failing examples are not kept on disk between runs
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- what to throw -------------------------------------------------------------------------------

INJECTIONS = [
    "\r\nBcc: victim@example.org",
    "\nX-Injected: yes",
    "\r",
    "\n",
    "\r\n\r\n<html>",
    "\r\n Folded: no",
    "\n\tX-Injected: yes",
    "\rX-Injected: yes",
    "\x00",
    "\x0b",
    "\x1b[31m",
    "\x85",
    "\u2028",
    "\u2029",
    "\t",
    "\ufeff",
    "=?utf-8?q?=0D=0ABcc:_victim@example.org?=",
    "%0d%0aBcc:%20victim@example.org",
    '"Amara" <victim@example.org>, ',
    "<script>alert(1)</script>",
    "ប្រជុំ\u200b",
    "' OR 1=1 --",
    "{{ 7*7 }}",
]
# Any code point but surrogates (UTF-8 cannot carry them), control characters included.
unicode_text = st.text(st.characters(codec="utf-8"), max_size=120)
injected = st.builds(
    lambda before, bad, after: before + bad + after,
    unicode_text,
    st.sampled_from(INJECTIONS),
    unicode_text,
)
very_long = st.builds(
    lambda piece, times: (piece or "x") * times,
    st.sampled_from(["x", "ខ្មែរ", "\r\n", "a b ", "😀"]),
    st.integers(min_value=200, max_value=40_000),
)
hostile = st.one_of(unicode_text, injected, very_long)
# For the values that end up in a header (a display name, a Subject): mostly injections.
header_bound = st.one_of(st.none(), st.none(), injected, unicode_text)
weird_emails = st.sampled_from(
    [
        "ស្រី@example.org",
        "user@ខ្មែរ.example",
        "a@b",
        "x@example.org\r\nBcc: victim@example.org",
        '"quoted\\"name"@example.org',
        "a" * 65 + "@example.org",
        "x@" + "d" * 250 + ".org",
    ]
)
WRONG_METHODS = ["PUT", "PATCH", "DELETE"]
JUNK_TYPES = [
    "application/json",
    "text/plain",
    "multipart/form-data",  # no boundary
    "multipart/form-data; boundary=nothing-like-the-body",
    "application/x-www-form-urlencoded; charset=utf-16",
    "application/octet-stream",
]


def body(kind: str, form: dict[str, str], junk: bytes, content_type: str) -> dict[str, object]:
    """Arguments for the test client that send `form` (or junk) as `kind` of request body."""
    if kind == "form":
        return {"data": form}
    if kind == "multipart":
        return {"data": {**form, "attachment": (io.BytesIO(junk), "junk.bin")}}
    if kind == "json":
        return {"data": json.dumps(form), "content_type": "application/json"}
    if kind == "text":
        return {
            "data": "\n".join(f"{k}={v}" for k, v in form.items()),
            "content_type": "text/plain",
        }
    return {"data": junk, "content_type": content_type}


bodies = st.sampled_from(["form", "form", "form", "multipart", "json", "text", "junk"])


# --- what must hold ----------------------------------------------------------------------------

SINGLE_HEADERS = {"from", "to", "reply-to", "subject", "date", "message-id", "content-type"}
HEADER_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # printable ASCII but the colon


def assert_clean_headers(mail: ReceivedMail) -> None:
    """The raw header block is plain ASCII lines; unfolded, no value holds a CR or LF, no header
    was smuggled in, and the message goes to exactly its envelope recipient."""
    head, blank, _ = mail.raw.partition(b"\r\n\r\n")
    assert blank, "no empty line ends the header block"
    assert head.isascii(), head
    unfolded = re.sub(rb"\r\n[ \t]", b" ", head)
    names = []
    for line in unfolded.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        assert colon and HEADER_NAME.fullmatch(name), f"not a header line: {line!r}"
        assert b"\r" not in value and b"\n" not in value, f"bare CR or LF in {line!r}"
        names.append(name.decode().lower())
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    repeated = [name for name in SINGLE_HEADERS if names.count(name) > 1]
    assert repeated == [], f"headers repeated: {repeated}"
    smuggled = {"bcc", "cc", "x-injected"} & set(names)
    assert not smuggled, f"headers smuggled in: {smuggled}"
    assert len(mail.rcpt_tos) == 1
    to = mail.message["To"].addresses
    assert len(to) == 1
    if mail.rcpt_tos[0].isascii():  # see test_mail_to_an_internationalised_address_...
        assert to[0].addr_spec.lower() == mail.rcpt_tos[0].lower()


def deliver_and_check(deliver, smtp_server) -> list[ReceivedMail]:  # type: ignore[no-untyped-def]
    """Send what is queued; check and forget every message that arrived.

    Nothing may be lost on the way: the only message allowed not to arrive is one to an
    internationalised address, which the test server (no SMTPUTF8) cannot take.
    """
    report = deliver().delivery
    received = smtp_server.messages
    smtp_server.clear()
    for mail in received:
        assert_clean_headers(mail)
    assert report.sent == len(received)
    for error in report.errors:
        recipient, _, detail = error.partition(": ")
        assert not recipient.isascii() and "SMTPUTF8" in detail, f"not delivered: {error}"
    return received


def stored(db) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    return tuple(
        db.scalar(select(func.count()).select_from(model))
        for model in (JoinRequest, OutboundEmail, Token, AuditEvent, Suppression, Contact)
    )


# --- POST /join ----------------------------------------------------------------------------------

JOIN_FIELDS = [*join_form(), "csrf_token", "representatives-5-name", "unexpected"]
# Two examples in three are well-formed POSTs with a valid CSRF token, so that the form's own
# validation meets the hostile values; the third may be anything: a wrong method, a wrong
# content type, junk, no token.
proper = st.integers(0, 2).map(bool)
methods = st.sampled_from(["POST", "POST", *WRONG_METHODS])
WELL_FORMED_JOIN = dict(
    well_formed=True,
    overrides={},
    email=None,
    valid_csrf=True,
    method="POST",
    kind="form",
    junk=b"",
    content_type="text/plain",
)


def test_join_form_survives_hostile_input_and_only_clean_mail_leaves(
    client, db, deliver, smtp_server
):
    applicants = itertools.count()

    @EXAMPLES
    @given(
        well_formed=proper,
        name=header_bound,
        organisation=header_bound,
        overrides=st.dictionaries(st.sampled_from(JOIN_FIELDS), hostile, max_size=2),
        email=st.one_of(st.none(), st.none(), st.emails(), weird_emails),
        valid_csrf=st.booleans(),
        method=methods,
        kind=bodies,
        junk=st.binary(max_size=300),
        content_type=st.sampled_from(JUNK_TYPES),
    )
    @example(name="Amara\r\nBcc: victim@example.org", organisation=None, **WELL_FORMED_JOIN)
    @example(name=None, organisation="Memory\nX-Injected: yes", **WELL_FORMED_JOIN)
    @example(name=None, organisation=None, **WELL_FORMED_JOIN)
    @example(name="Amara\u2028Sok\ufeff", organisation="ប្រជុំ\u2029", **WELL_FORMED_JOIN)
    @example(name='"Amara" <victim@example.org>, ', organisation="A\tB", **WELL_FORMED_JOIN)
    def submit(  # type: ignore[no-untyped-def]
        well_formed,
        name,
        organisation,
        overrides,
        email,
        valid_csrf,
        method,
        kind,
        junk,
        content_type,
    ):
        if well_formed:
            method, kind, valid_csrf = "POST", "form", True
        form = join_form(email=email or f"applicant{next(applicants)}@riverbank.example")
        if name is not None:
            form["name"] = name
        if organisation is not None:
            form["organisation_name"] = organisation
        form.update(overrides)
        if valid_csrf:
            form["csrf_token"] = csrf_token(client, "/join")
        before = stored(db)

        answer = client.open("/join", method=method, **body(kind, form, junk, content_type))

        assert answer.status_code < 500
        if answer.status_code != 302:
            assert stored(db) == before
            return
        for mail in deliver_and_check(deliver, smtp_server):
            if any(link.startswith("/confirm/") for link in mail.links):
                # Confirming sends the organisation's name to the coordinators, in a Subject.
                confirm = {"csrf_token": csrf_token(client, "/join")}
                assert client.post(mail.link("/confirm/"), data=confirm).status_code == 302
        deliver_and_check(deliver, smtp_server)

    submit()
    # The three explicit good examples at least, so the test cannot pass by refusing all.
    assert db.scalar(select(func.count()).select_from(JoinRequest)) >= 3, "too little got in"


ADDRESS = re.compile(rb"<([^<>]*)>")


@pytest.mark.parametrize(
    "address",
    ["amara@xn--bcher-kva.example", "amara@bücher.example", "ស្រី@riverbank.example"],
)
def test_mail_to_an_internationalised_address_carries_a_valid_address_in_to(
    client, deliver, smtp_server, address
):
    answer = submit_join_form(client, email=address)

    if answer.status_code == 400:  # refusing such an address at the form is acceptable too
        return
    assert answer.status_code == 302
    deliver()
    (mail,) = [m for m in smtp_server.messages if not m.rcpt_tos[0].endswith("@wg.test")]
    head = mail.raw.partition(b"\r\n\r\n")[0]
    to = re.search(rb"^To:(.*?)\r\n(?![ \t])", head, re.MULTILINE | re.DOTALL).group(1)
    addr_spec = ADDRESS.search(to).group(1)
    assert b"=?" not in addr_spec, to  # no encoded-word inside an address
    if "@xn--" in address or "ü" in address:
        assert (mail.rcpt_tos[0], addr_spec) == (
            "amara@xn--bcher-kva.example",
            b"amara@xn--bcher-kva.example",
        )


# --- GET/POST /rsvp/<token> and /unsubscribe/<token> ---------------------------------------------

INVITED = 30


@pytest.fixture
def links(app, clock, deliver, smtp_server, make_member) -> list[dict[str, str]]:
    """Thirty members invited to a meeting the day after tomorrow: their RSVP and unsubscribe
    paths, taken from the invitations as they arrived."""
    clock.set(local(2026, 12, 1, 9, 0))
    for n in range(INVITED):
        make_member(f"rep{n:02}@riverbank.example", name=f"Rep {n}")
    add_meeting(app, clock, local(2026, 12, 3, 14, 0))
    received = deliver_and_check(deliver, smtp_server)
    invitations = [mail for mail in received if mail.rcpt_tos[0].startswith("rep")]
    assert len(invitations) == INVITED
    return [
        {"rsvp": mail.link("/rsvp/"), "unsubscribe": mail.link("/unsubscribe/")}
        for mail in sorted(invitations, key=lambda mail: mail.rcpt_tos[0])
    ]


def answers(db) -> list[tuple]:  # type: ignore[no-untyped-def]
    columns = (
        Invitation.id,
        Invitation.answer,
        Invitation.note,
        Invitation.substitute_name,
        Invitation.substitute_email,
        Invitation.answered_at,
    )
    return [tuple(row) for row in db.execute(select(*columns).order_by(Invitation.id))]


def contact_states(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rows = db.execute(select(Contact.email, Contact.status))
    return {email: status.value for email, status in rows}


forged_tokens = st.one_of(
    unicode_text.filter(bool),
    st.sampled_from(["x" * 65, "%00%0d%0a", "..", "ខ្មែរ", "a/b", "Zm9yZ2Vk", "%2F..%2F"]),
)


def path_for(links: list[dict[str, str]], kind: str, pick: int, forged: str | None) -> str:
    if forged is None:
        return links[pick][kind]
    return f"/{kind}/{quote(forged, safe='')}"


WELL_FORMED_RSVP = dict(
    well_formed=True,
    pick=0,
    forged=None,
    method="POST",
    preselect=None,
    choice="yes",
    substitute=True,
    valid_csrf=True,
    kind="form",
    junk=b"",
    content_type="text/plain",
)


def test_rsvp_survives_hostile_input_and_reminds_substitutes_with_clean_headers(
    client, db, clock, deliver, smtp_server, links
):
    recorded = []

    @EXAMPLES
    @given(
        well_formed=proper,
        pick=st.integers(0, INVITED - 1),
        forged=st.one_of(st.none(), forged_tokens),
        method=st.sampled_from(["GET", "HEAD", "POST", *WRONG_METHODS]),
        preselect=st.one_of(st.none(), st.sampled_from(["yes", "no", "maybe"]), hostile),
        choice=st.sampled_from(["yes", "maybe", "no", "yes", "maybe", ""]).flatmap(
            lambda choice: st.just(choice) if choice else hostile
        ),
        substitute=st.booleans(),
        fields=st.dictionaries(
            st.sampled_from(["note", "substitute_name", "substitute_email", "answer"]),
            hostile,
            max_size=2,
        ),
        valid_csrf=st.booleans(),
        kind=bodies,
        junk=st.binary(max_size=300),
        content_type=st.sampled_from(JUNK_TYPES),
    )
    @example(fields={"substitute_name": "Dara\r\nBcc: victim@example.org"}, **WELL_FORMED_RSVP)
    @example(fields={"substitute_name": "Dara\u2028Chan", "note": "a\r\nb"}, **WELL_FORMED_RSVP)
    @example(fields={}, **{**WELL_FORMED_RSVP, "pick": 1, "choice": "maybe"})
    def answer(  # type: ignore[no-untyped-def]
        well_formed,
        pick,
        forged,
        method,
        preselect,
        choice,
        substitute,
        fields,
        valid_csrf,
        kind,
        junk,
        content_type,
    ):
        if well_formed:
            forged, method, kind, valid_csrf = None, "POST", "form", True
        path = path_for(links, "rsvp", pick, forged)
        form = {"answer": choice, "note": ""}
        if substitute:
            form |= {"substitute_name": f"Colleague {pick}", "substitute_email": f"s{pick}@x.org"}
        form |= fields
        if valid_csrf:
            form["csrf_token"] = csrf_token(client, "/join")
        query = {"answer": preselect} if preselect is not None else {}
        before = answers(db), stored(db)

        response = client.open(
            path, method=method, query_string=query, **body(kind, form, junk, content_type)
        )

        assert response.status_code < 500
        if method in ("GET", "HEAD") or response.status_code != 302:
            assert (answers(db), stored(db)) == before
        else:
            recorded.append(pick)

    answer()
    assert len(recorded) >= 2, "the good examples were refused"
    last = {
        "answer": "yes",
        "substitute_name": "Dara\u2028Chan \u200b",
        "substitute_email": "dara@riverbank.example",
        "csrf_token": csrf_token(client, "/join"),
    }
    assert client.post(links[-1]["rsvp"], data=last).status_code == 302
    # The day before the meeting, those coming and the colleagues they named get a reminder.
    clock.set(local(2026, 12, 2, 9, 0))
    reminders = deliver_and_check(deliver, smtp_server)
    assert {"rep29@riverbank.example", "dara@riverbank.example"} <= {
        mail.rcpt_tos[0] for mail in reminders
    }


WELL_FORMED_ONE_CLICK = dict(
    well_formed=False,
    method="POST",
    one_click=True,
    fields={},
    valid_csrf=False,
    kind="form",
    junk=b"",
    content_type="text/plain",
)
UNSUBSCRIBE_FIELDS = [
    "List-Unsubscribe",
    "stop-submit",
    "prefs-language",
    "prefs-announcements",
    "prefs-submit",
    "x",
]


def test_unsubscribe_survives_hostile_input_and_one_click_always_works(client, db, links):
    unsubscribed = []

    @EXAMPLES
    @given(
        well_formed=proper,
        pick=st.integers(0, INVITED - 1),
        forged=st.one_of(st.none(), forged_tokens),
        method=st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", *WRONG_METHODS]),
        one_click=st.booleans(),
        fields=st.dictionaries(
            st.sampled_from(UNSUBSCRIBE_FIELDS),
            st.one_of(st.sampled_from(["en", "km", "y", "One-Click"]), hostile),
            max_size=3,
        ),
        valid_csrf=st.booleans(),
        kind=bodies,
        junk=st.binary(max_size=300),
        content_type=st.sampled_from(JUNK_TYPES),
    )
    @example(pick=1, forged=None, **WELL_FORMED_ONE_CLICK)
    @example(pick=2, forged=None, **{**WELL_FORMED_ONE_CLICK, "kind": "multipart"})
    @example(pick=3, forged=None, **{**WELL_FORMED_ONE_CLICK, "valid_csrf": True})
    def unsubscribe(  # type: ignore[no-untyped-def]
        well_formed, pick, forged, method, one_click, fields, valid_csrf, kind, junk, content_type
    ):
        if well_formed:
            forged, method, kind = None, "POST", "form"
        path = path_for(links, "unsubscribe", pick, forged)
        form = {"List-Unsubscribe": "One-Click"} if one_click else dict(fields)
        if valid_csrf:
            token = csrf_token(client, "/join")
            form |= {"csrf_token": token, "stop-csrf_token": token, "prefs-csrf_token": token}
        before = contact_states(db), stored(db)

        response = client.open(path, method=method, **body(kind, form, junk, content_type))

        assert response.status_code < 500
        if method != "POST" or response.status_code >= 400:
            assert (contact_states(db), stored(db)) == before
        if forged is None and method == "POST" and one_click and kind in ("form", "multipart"):
            # RFC 8058: the provider's POST works without cookie or token and never redirects.
            assert response.status_code == 200
            assert contact_states(db)[f"rep{pick:02}@riverbank.example"] == "unsubscribed"
            unsubscribed.append(pick)

    unsubscribe()
    assert len(unsubscribed) >= 3, "too few one-click unsubscribes were tried"


# --- wg members import FILE.csv ----------------------------------------------------------------

GOOD_ROW = ["Riverbank Survivors Network", "Amara Sok", "", "en", "Programme officer", "012 345"]
HEADERS = [
    "organization,name,email,language,role,phone",
    "\ufefforganisation,Name,EMAIL,Language,Role,Phone,kind",
    "organization,name,email,language",
    "name,email",  # a required column missing
    "organization;name;email;language;role;phone",
]
SUMMARY = re.compile(r"^created (\d+), updated \d+, unchanged", re.MULTILINE)


def test_csv_import_survives_hostile_files_and_imported_names_make_clean_mail(
    app, db, clock, deliver, smtp_server, tmp_path: Path
):
    runner = app.test_cli_runner()
    numbers = itertools.count()

    @EXAMPLES
    @given(
        well_formed=proper,
        header=st.sampled_from(HEADERS),
        rows=st.lists(
            st.dictionaries(st.integers(0, len(GOOD_ROW) - 1), hostile, max_size=2),
            min_size=1,
            max_size=4,
        ),
        quoted=st.booleans(),
        encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]),
        trailer=st.binary(max_size=40),
    )
    @example(
        well_formed=True,
        header=HEADERS[0],
        rows=[{}, {1: "សុខ ចន្ទា"}, {1: '"Dara" <victim@example.org>, '}],
        quoted=True,
        encoding="utf-8",
        trailer=b"",
    )
    @example(
        well_formed=True,
        header=HEADERS[0],
        rows=[{1: "Dara\r\nBcc: victim@example.org"}, {1: "Chea\x00"}, {0: "Org\u2028X"}],
        quoted=True,
        encoding="utf-8",
        trailer=b"",
    )
    def import_file(well_formed, header, rows, quoted, encoding, trailer):  # type: ignore[no-untyped-def]
        if well_formed:
            header, quoted, encoding, trailer = HEADERS[0], True, "utf-8-sig", b""
        text = io.StringIO(newline="")
        text.write(header + "\r\n")
        for changes in rows:
            row = [*GOOD_ROW]
            row[2] = f"member{next(numbers)}@import.example"
            for index, value in changes.items():
                row[index] = value
            if quoted:
                csv.writer(text).writerow(row)
            else:
                text.write(",".join(row) + "\r\n")
        path = tmp_path / "members.csv"
        path.write_bytes(text.getvalue().encode(encoding, errors="replace") + trailer)
        before = stored(db), db.scalar(select(func.count()).select_from(Organisation))

        result = runner.invoke(cli, ["members", "import", str(path)])

        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.output,
            result.exc_info,
        )
        assert "Traceback" not in result.output
        after = stored(db), db.scalar(select(func.count()).select_from(Organisation))
        if result.exit_code == 2:  # the file cannot be used at all
            assert after == before, result.output
            return
        assert result.exit_code in (0, 1)  # 1: some lines had errors, the good ones are in
        created = int(SUMMARY.search(result.output).group(1))
        assert after[0][-1] - before[0][-1] == created  # contacts: exactly the ones reported

    import_file()
    assert db.scalar(select(func.count()).select_from(Contact)) >= 3, "too few rows got in"
    # Every imported name now goes into the To header of a real invitation.
    clock.set(local(2026, 12, 1, 9, 0))
    add_meeting(app, clock, local(2026, 12, 3, 14, 0))
    assert len(deliver_and_check(deliver, smtp_server)) >= 3
