"""Members from the console: find, edit, a new address its owner confirms, active or not,
suppression lifted with a reason, a colleague, a merge, and erasure that leaves nothing."""

from __future__ import annotations

from sqlalchemy import select, text

from service.db import get_database, session_scope
from service.meetings import operations as meetings
from service.membership import operations as membership
from service.models import (
    AuditEvent,
    Base,
    Contact,
    ContactStatus,
    InboundMessage,
    InboundOutcome,
    Invitation,
    Organisation,
    Rsvp,
    Suppression,
)
from service.notices import digest
from tests.console.conftest import COORDINATOR, post, sign_in
from tests.service.test_meetings import details, local
from tests.web import csrf_token, post_with_csrf, submit_join_form

CONTACT_FIELDS = {"name": "Amara Sok", "role": "Director", "phone": "", "language": "en"}


def contact_of(db, email: str) -> Contact:
    return db.scalars(select(Contact).where(Contact.email == email)).one()


def test_members_are_found_by_khmer_and_latin_names(console, make_member):
    make_member("amara@riverbank.example", name="Amara Sok")
    make_member("bopha@memory.example", name="បុប្ផា ចាន់", organisation="សមាគមការចងចាំ")

    latin = console.get("/console/members?q=amara").get_data(as_text=True)
    khmer = console.get("/console/members?q=បុប្ផា").get_data(as_text=True)
    by_organisation = console.get("/console/members?q=ការចងចាំ").get_data(as_text=True)

    assert "Amara Sok" in latin and "បុប្ផា" not in latin
    assert "បុប្ផា ចាន់" in khmer and "Amara Sok" not in khmer
    assert "បុប្ផា ចាន់" in by_organisation


def test_a_changed_address_is_used_only_once_its_owner_confirms_it(
    app, console, make_member, db, deliver, smtp_server
):
    amara = make_member("amara@riverbank.example", name="Amara")
    path = f"/console/contacts/{amara.id}"

    answer = post(console, path, **CONTACT_FIELDS, email="amara.sok@riverbank.example")
    deliver()

    assert answer.status_code == 303
    db.expire_all()
    assert contact_of(db, "amara@riverbank.example").name == "Amara Sok"  # saved at once
    link = smtp_server.single_message_to("amara.sok@riverbank.example").link("/address/")
    owner = app.test_client()
    assert owner.get(link).status_code == 200
    db.expire_all()
    assert db.get(Contact, amara.id).email == "amara@riverbank.example"  # a GET changes nothing
    assert post_with_csrf(owner, link).status_code == 200
    db.expire_all()
    assert db.get(Contact, amara.id).email == "amara.sok@riverbank.example"
    assert owner.post(link, data={"csrf_token": csrf_token(owner, "/join")}).status_code == 410


def test_a_member_is_deactivated_and_reactivated(console, make_member, db):
    amara = make_member("amara@riverbank.example")
    path = f"/console/contacts/{amara.id}/active"

    post(console, path, form_page=f"/console/contacts/{amara.id}", active="no")
    db.expire_all()
    assert db.get(Contact, amara.id).status is ContactStatus.INACTIVE
    post(console, path, form_page=f"/console/contacts/{amara.id}", active="yes")
    db.expire_all()

    assert db.get(Contact, amara.id).status is ContactStatus.ACTIVE
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.actor == COORDINATOR)).all()
    assert "contact.deactivated" in actions and "contact.reactivated" in actions


def test_a_suppression_is_lifted_only_with_a_recorded_reason(app, console, make_member, db, clock):
    amara = make_member("amara@riverbank.example")
    with app.app_context(), session_scope() as session:
        membership.unsubscribe(session, session.get(Contact, amara.id), now=clock(), via="page")
    path = f"/console/contacts/{amara.id}/lift"
    page = f"/console/contacts/{amara.id}"

    assert post(console, path, form_page=page, reason="").status_code == 400
    answer = post(console, path, form_page=page, reason="She asked by phone on 3 December.")

    assert answer.status_code == 303
    db.expire_all()
    assert db.get(Contact, amara.id).status is ContactStatus.ACTIVE
    assert db.scalar(select(Suppression.id)) is None
    lifted = db.scalars(select(AuditEvent).where(AuditEvent.action == "suppression.lifted")).one()
    assert lifted.detail["reason"] == "She asked by phone on 3 December."
    assert lifted.actor == COORDINATOR


def test_a_colleague_added_gets_a_link_to_confirm_their_address(
    app, console, make_member, db, deliver, smtp_server
):
    amara = make_member("amara@riverbank.example")
    path = f"/console/organisations/{amara.organisation_id}/colleague"

    answer = post(
        console, path, form_page=f"/console/organisations/{amara.organisation_id}",
        name="Dara Chan", email="dara@riverbank.example", language="km",
    )  # fmt: skip
    deliver()

    assert answer.status_code == 303
    assert contact_of(db, "dara@riverbank.example").status is ContactStatus.UNCONFIRMED
    link = smtp_server.single_message_to("dara@riverbank.example").link("/representative/")
    assert post_with_csrf(app.test_client(), link).status_code == 302
    db.expire_all()
    assert contact_of(db, "dara@riverbank.example").status is ContactStatus.ACTIVE


def test_two_organisations_are_merged_into_one(console, make_member, db):
    amara = make_member("amara@riverbank.example", organisation="Riverbank")
    dara = make_member("dara@riverbank.example", organisation="Riverbank Network")
    path = f"/console/organisations/{dara.organisation_id}/merge"

    answer = post(
        console,
        path,
        form_page=f"/console/organisations/{dara.organisation_id}",
        into=str(amara.organisation_id),
    )

    assert answer.status_code == 303
    assert db.scalars(select(Organisation.name)).all() == ["Riverbank"]
    db.expire_all()
    assert db.get(Contact, dara.id).organisation_id == amara.organisation_id


PERSON = {"email": "amara@riverbank.example", "name": "Amara Sok", "phone": "+855 12 345 678"}


def every_cell(engine) -> list[tuple[str, str]]:
    """(table, cell as text) of every cell of every table."""
    found = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(text(f"SELECT * FROM {table.name}")):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", errors="replace")
                    found.append((table.name, str(value)))
    return found


def test_erasure_leaves_no_personal_data_of_that_person_in_any_table(
    app, client, db, clock, deliver, smtp_server, make_member
):
    clock.set(local(2027, 1, 5, 9, 0))
    # Amara joins through the form, is approved, invited, answers, names no one, is named as a
    # substitute by Bopha, replies by mail, unsubscribes; the digest lists her.
    make_member("bopha@memory.example", name="Bopha", organisation="Memory Association")
    submit_join_form(client, phone=PERSON["phone"])
    deliver()
    post_with_csrf(client, smtp_server.single_message_to(PERSON["email"]).link("/confirm/"))
    sign_in(client, deliver, smtp_server)
    request_id = db.scalar(text("SELECT id FROM join_request"))
    post(client, f"/console/requests/{request_id}", decision="approve", note="")
    with app.app_context(), session_scope() as session:
        meetings.add_meeting(session, details(local(2027, 1, 14, 14, 0)), now=clock())
    deliver()
    for invitation in db.scalars(select(Invitation)):
        if invitation.contact.email == PERSON["email"]:
            invitation.answer, invitation.note = Rsvp.YES, "Amara Sok will bring the report"
        else:
            invitation.answer = Rsvp.NO
            invitation.substitute_name, invitation.substitute_email = (
                PERSON["name"],
                PERSON["email"],
            )
    db.add(InboundMessage(
        digest="x" * 64, sender=PERSON["email"], subject="Re: Invitation", kind="reply",
        outcome=InboundOutcome.PROCESSED, detail="yes", excerpt="Yes, Amara Sok",
        received_at=clock(),
    ))  # fmt: skip
    db.commit()
    with app.app_context(), session_scope() as session:
        digest.send_now(session, now=clock())
        membership.unsubscribe(
            session, session.scalars(select(Contact).where(Contact.email == PERSON["email"])).one(),
            now=clock(), via="page",
        )  # fmt: skip
    engine = get_database(app).engine
    assert any(PERSON["email"] in cell for _table, cell in every_cell(engine))
    amara = contact_of(db, PERSON["email"])

    answer = post(
        client,
        f"/console/contacts/{amara.id}/erase",
        f"/console/contacts/{amara.id}",
        understood="y",
    )
    deliver()

    assert answer.status_code == 303
    left = [
        (table, cell[:120])
        for table, cell in every_cell(engine)
        if any(value.lower() in cell.lower() for value in PERSON.values())
    ]
    assert left == []
    erased = db.scalars(select(AuditEvent).where(AuditEvent.action == "contact.erased")).one()
    assert erased.actor == COORDINATOR and erased.detail["pseudonym"].startswith("erased-")
    assert contact_of(db, "bopha@memory.example").status is ContactStatus.ACTIVE
