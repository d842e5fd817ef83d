"""The meeting cycle through the production topology, as members and coordinators live it.

The tests share one installation and run in order: people join, a meeting is called, members
answer in every way they can, mail bounces, and the operator gets the relay wrong three ways.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, vCalAddress

from tests.processes import wait_until
from tests.production.conftest import COORDINATOR, SECRETARIAT, Production
from tests.production.stack import PIPE_ADDRESS

pytestmark = pytest.mark.browser

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
ALICE, BOB, CAROL, DAVE, ERIN = (
    f"{name}@remote.example" for name in ("alice", "bob", "carol", "dave", "erin")
)
UNKNOWN = "nobody@remote.example"  # accepted by the relay, then bounced: no such mailbox


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link(production: Production, message: EmailMessage, path: str) -> str:
    """The one link of `message` whose path starts with `path`, query left off."""
    pattern = re.escape(production.base_url + path) + r"[^\s?<>\"]+"
    found = set(re.findall(pattern, text_of(message)))
    assert len(found) == 1, (path, found)
    return found.pop()


def only_once(messages: list[EmailMessage]) -> None:
    counts = Counter(message["Message-ID"] for message in messages)
    assert set(counts.values()) == {1}, counts


def fill_join_form(page, email: str, organisation: str, name: str, language: str) -> None:  # type: ignore[no-untyped-def]
    page.fill("[name=organisation_name]", organisation)
    page.check("[name=kind][value=organisation]")
    page.check("[name=represented_in_cambodia][value=yes]")
    page.fill("[name=cambodia_location]", "Kampong Cham")
    page.fill("[name=work_summary]", "Listening groups and legal aid for survivors.")
    page.fill("[name=name]", name)
    page.fill("[name=role]", "Director")
    page.fill("[name=email]", email)
    page.check(f"[name=language][value={language}]")
    page.check("[name=consent]")


def press(page, name: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Press a form's (named) button and wait for the page the POST leads to."""
    button = page.locator("main form button[type=submit]")
    if name:
        button = page.get_by_role("button", name=name)
    with page.expect_navigation():
        button.first.click()


def test_two_people_join_at_once_each_in_their_own_session_and_language(
    production: Production, browser
):
    khmer = browser.new_context(locale="km-KH", viewport={"width": 360, "height": 740})
    english = browser.new_context(locale="en-US", viewport={"width": 360, "height": 740})
    alice, bob = khmer.new_page(), english.new_page()
    try:
        # Both forms are open at once, as on a busy morning: two sessions, two form tokens.
        alice.goto(production.base_url + "/join")
        bob.goto(production.base_url + "/join")
        assert alice.locator("html").get_attribute("lang") == "km"
        assert bob.locator("html").get_attribute("lang") == "en"
        fill_join_form(alice, ALICE, "Mekong Memory Group", "Sok Alice", "km")
        fill_join_form(bob, BOB, "Tonle Listening Circle", "Chan Bob", "en")
        press(bob)
        press(alice)
        assert "/join/sent" in alice.url and "/join/sent" in bob.url
        assert alice.locator("html").get_attribute("lang") == "km"
        assert "Check your email" in bob.content()

        for page, address in ((alice, ALICE), (bob, BOB)):
            confirmation = production.mail[address].wait_for(1)[0]
            page.goto(link(production, confirmation, "/confirm/"))
            press(page)
        reviews = production.mail[COORDINATOR].wait_for(2)
        coordinator = english.new_page()
        for review in reviews:
            coordinator.goto(link(production, review, "/review/"))
            press(coordinator, "Approve")

        for address in (ALICE, BOB):
            confirmation, welcome = production.mail[address].wait_for(2)
            assert "welcome" in welcome["Subject"].lower() or "ស្វាគមន៍" in welcome["Subject"]
        assert re.search("[\u1780-\u17ff]", production.mail[ALICE].messages()[1]["Subject"])
    finally:
        khmer.close()
        english.close()
    settled(production)
    for address in (ALICE, BOB, COORDINATOR):
        only_once(production.mail[address].messages())


def settled(production: Production) -> None:
    """Wait until nothing is left to send: a message marked sent is never sent again, so
    what has arrived by then is all that ever will."""
    wait_until(lambda: production.queued() == 0, timeout=60, every=0.2)
    time.sleep(1)  # Postfix hands the last accepted message to Dovecot


def invitation_of(production: Production, address: str) -> EmailMessage:
    messages = production.mail.read_over_imap(address)
    found = [m for m in messages if m.get_content_type() == "multipart/mixed" or "/rsvp/" in str(m)]
    invitations = [m for m in found if "/rsvp/" in text_of(m)]
    assert len(invitations) == 1, [m["Subject"] for m in messages]
    return invitations[0]


def meeting_answers(production: Production, meeting_id: str) -> dict[str, tuple[str, str]]:
    shown = json.loads(production.wg("meetings", "show", meeting_id, "--json").stdout)
    return {
        person["email"]: (person["answer"], person.get("answered_via") or "")
        for person in shown["invitees"]
    }


@pytest.fixture(scope="module")
def meeting(production: Production) -> str:
    """Three more members imported, a meeting in three days, and its invitations sent."""
    roster = production.logs / "members.csv"
    roster.write_text(
        "organization,name,email,language\n"
        f"Memory Association,Carol Keo,{CAROL},en\n"
        f"Memory Association,Dave Lim,{DAVE},en\n"
        f"Memory Association,Erin Ouk,{ERIN},km\n"
        f"Memory Association,No Body,{UNKNOWN},en\n"
    )
    production.wg("members", "import", str(roster))
    starts = (datetime.now(PHNOM_PENH) + timedelta(days=3)).replace(
        hour=14, minute=0, second=0, microsecond=0, tzinfo=None
    )
    added = production.wg(
        "meetings", "add", "--title", "Monthly meeting", "--starts-at", starts.isoformat(),
        "--location", "Documentation centre, Phnom Penh",
    )
    meeting_id = re.search(r"\b(\d+)\b", added.stdout.decode()).group(1)
    production.wg("tick")  # invitations are due now; the scheduler would take up to a minute
    for address in (ALICE, BOB, CAROL, DAVE, ERIN):
        production.mail[address].wait_for(1 if address not in (ALICE, BOB) else 3)
    return meeting_id


def test_invitations_reach_the_members_and_answers_by_link_reply_and_calendar_are_recorded(
    production: Production, meeting: str, browser
):
    # Two members answer from their links at once, each in their own session and language.
    khmer, english = browser.new_context(locale="km-KH"), browser.new_context(locale="en-US")
    try:
        alice, bob = khmer.new_page(), english.new_page()
        alice.goto(link(production, invitation_of(production, ALICE), "/rsvp/") + "?answer=yes")
        bob.goto(link(production, invitation_of(production, BOB), "/rsvp/") + "?answer=maybe")
        assert alice.locator("html").get_attribute("lang") == "km"
        assert bob.locator("html").get_attribute("lang") == "en"
        press(bob)
        press(alice)
    finally:
        khmer.close()
        english.close()

    carols = invitation_of(production, CAROL)
    reply = EmailMessage()
    reply["From"], reply["To"] = f"Carol Keo <{CAROL}>", carols["Reply-To"]
    reply["Subject"] = "Re: " + carols["Subject"]
    reply["Message-ID"] = make_msgid(domain="remote.example")
    reply["In-Reply-To"] = reply["References"] = carols["Message-ID"]
    reply.set_content("Yes, I will attend.\n\nOn Monday the secretariat wrote:\n> You are invited")
    production.mail.send_as(CAROL, reply)

    daves = invitation_of(production, DAVE)
    production.mail.send_as(DAVE, calendar_reply(daves, DAVE, "DECLINED"))

    def answered() -> bool:
        production.wg("inbound", "poll")  # as the scheduler does every few minutes
        answers = meeting_answers(production, meeting)
        return answers[CAROL][0] != "none" and answers[DAVE][0] != "none"

    wait_until(answered, timeout=60, every=1)
    answers = meeting_answers(production, meeting)
    assert answers[ALICE] == ("yes", "link") and answers[BOB] == ("maybe", "link")
    assert answers[CAROL] == ("yes", "email")
    assert answers[DAVE] == ("no", "calendar")


def test_two_members_keep_their_own_page_and_calendar_feed_under_wg_web(
    production: Production, meeting: str, browser
):
    # Each browser asks for the other language: the page follows the member, not the browser.
    asks_english, asks_khmer = browser.new_context(locale="en-US"), browser.new_context(
        locale="km-KH"
    )
    try:
        erin, carol = asks_english.new_page(), asks_khmer.new_page()
        erin.goto(link(production, invitation_of(production, ERIN), "/member/"))
        carol.goto(link(production, invitation_of(production, CAROL), "/member/"))
        assert erin.locator("html").get_attribute("lang") == "km"
        assert carol.locator("html").get_attribute("lang") == "en"
        feed_url = erin.locator("a[href^='webcal://']").get_attribute("href")
        carol.get_by_label("Your role in the organisation").fill("Archivist")
        press(carol, "Save my details")
        assert carol.get_by_role("status").inner_text() == "Your details are saved."
    finally:
        asks_english.close()
        asks_khmer.close()

    with urllib.request.urlopen(feed_url.replace("webcal://", "http://", 1), timeout=10) as feed:
        assert feed.headers.get_content_type() == "text/calendar"
        events = list(Calendar.from_ical(feed.read()).walk("VEVENT"))
    assert [str(event["SUMMARY"]) for event in events] == ["Monthly meeting"]
    exported = json.loads(production.wg("members", "export", "--format", "json").stdout)
    roles = {row["email"]: row["role"] for row in exported}
    assert roles[CAROL] == "Archivist" and roles[ERIN] == ""


def calendar_reply(invitation: EmailMessage, attendee: str, partstat: str) -> EmailMessage:
    """What a calendar client sends back when its user accepts or declines the invitation."""
    request = next(
        Calendar.from_ical(part.get_payload(decode=True))
        for part in invitation.walk()
        if part.get_content_type() == "text/calendar"
    )
    event = next(iter(request.walk("VEVENT")))
    answer = Calendar()
    answer.add("prodid", "-//Test client//EN")
    answer.add("version", "2.0")
    answer.add("method", "REPLY")
    replied = type(event)()
    for name in ("UID", "SEQUENCE", "DTSTART", "DTEND", "SUMMARY", "ORGANIZER"):
        if name in event:
            replied[name] = event[name]
    replied.add("dtstamp", datetime.now(ZoneInfo("UTC")))
    person = vCalAddress(f"mailto:{attendee}")
    person.params["PARTSTAT"] = partstat
    replied.add("attendee", person)
    answer.add_component(replied)
    message = EmailMessage()
    message["From"] = attendee
    message["To"] = str(event["ORGANIZER"]).removeprefix("mailto:")
    message["Subject"] = f"Declined: {event['SUMMARY']}"
    message["Message-ID"] = make_msgid(domain="remote.example")
    message.set_content("Dave has declined this invitation.")
    message.add_alternative(
        answer.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return message


def test_the_readme_pipe_recipe_delivers_a_reply_into_the_service(
    production: Production, meeting: str
):
    erins = invitation_of(production, ERIN)
    reply = EmailMessage()
    reply["From"], reply["To"] = ERIN, PIPE_ADDRESS
    reply["Subject"] = "Re: " + erins["Subject"]
    reply["Message-ID"] = make_msgid(domain="remote.example")
    reply["In-Reply-To"] = reply["References"] = erins["Message-ID"]
    reply.set_content("Yes, I will attend.")

    production.mail.send_as(ERIN, reply)

    wait_until(lambda: meeting_answers(production, meeting)[ERIN][0] == "yes", timeout=30)
    assert meeting_answers(production, meeting)[ERIN] == ("yes", "email")


def test_a_real_bounce_returns_to_the_service_and_marks_that_member(
    production: Production, meeting: str
):
    # Postfix accepted the invitation to nobody@remote.example, then found no such mailbox and
    # sent its delivery report to the message's own return path, a subaddress of ours.
    def bounced() -> bool:
        production.wg("inbound", "poll")
        members = json.loads(production.wg("members", "list", "--json").stdout)
        people = {c["email"]: c for org in members for c in org["contacts"]}
        return people[UNKNOWN]["status"] == "bounced"

    wait_until(bounced, timeout=60, every=2)
    returned = production.mail[SECRETARIAT].messages(every_folder=True)
    report = next(m for m in returned if m.get_content_type() == "multipart/report")
    return_path = r"<?secretariat\+b-\d+-[0-9a-f]{16}@app\.example>?"
    assert re.match(return_path, report["Delivered-To"] or "")


def wait_for_fault(production: Production, words: str) -> None:
    wait_until(lambda: words in production.fault(), timeout=60, every=0.5)
    status, report = production.outbox()
    assert status == 1 and words in report["fault"]  # for monitoring: non-zero, and why
    assert report["counts"]["failed"] == 0
    with urllib.request.urlopen(production.base_url + "/healthz", timeout=10) as answer:
        health = json.load(answer)
    assert health["status"] == "degraded" and words in health["reason"]


@pytest.mark.parametrize(
    ("fault", "misconfiguration", "words"),
    [
        ("a wrong password", {"WG_SMTP_PASSWORD": "not-the-password"}, "authentication failed"),
        ("an untrusted certificate", {"WG_SMTP_CA_FILE": ""}, "certificate"),
        ("a refused sender", {"WG_REPLY_TO": "noreply@app.example"}, "not owned by user"),
    ],
)
def test_a_misconfigured_relay_keeps_the_mail_and_after_the_fix_it_arrives_once(
    production: Production, fault: str, misconfiguration: dict[str, str], words: str, tmp_path
):
    coordinator = production.mail[COORDINATOR]
    before = len(coordinator.files())
    production.start_scheduler(**misconfiguration)
    body = tmp_path / "news.md"
    body.write_text(f"A test announcement, sent while the relay had {fault}.")

    subject = f"News despite {fault}"
    production.wg("announce", "--test", "--subject", subject, "--body-file", str(body))
    wait_for_fault(production, words)
    assert len(coordinator.files()) == before

    production.start_scheduler()  # the operator mends the setting and restarts it

    arrived = coordinator.wait_for(before + 1)
    settled(production)
    assert production.fault() == "" and production.outbox()[0] == 0
    assert len(coordinator.files()) == before + 1
    assert f"News despite {fault}" in arrived[-1]["Subject"]
    only_once(coordinator.messages())
