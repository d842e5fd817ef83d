"""/console/members: organisations and contacts, searchable; a contact's page (edit, active or
not, suppression, erasure); an organisation's page (a colleague, a merge); and /address/<token>,
where the owner of a changed address confirms it."""

from __future__ import annotations

import unicodedata

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from forms.console import (
    ButtonForm,
    ColleagueForm,
    ContactForm,
    EraseForm,
    MergeForm,
    ReasonForm,
)
from service.clock import now
from service.console.blueprint import actor, bp, record
from service.db import db_session
from service.membership import editing, erasure, operations
from service.membership.editing import ContactDetails, MemberError
from service.models import Contact, Organisation


@bp.route("/console/members")
def members() -> ResponseReturnValue:
    query = unicodedata.normalize("NFC", request.args.get("q", "")).strip()[:100]
    statement = (
        select(Organisation)
        .options(selectinload(Organisation.contacts))
        .order_by(Organisation.name)
    )
    if query:
        pattern = f"%{query}%"
        matching = select(Contact.organisation_id).where(
            or_(
                Contact.name.ilike(pattern, escape="\\"),
                Contact.email.ilike(pattern, escape="\\"),
            )
        )
        statement = statement.where(
            or_(Organisation.name.ilike(pattern, escape="\\"), Organisation.id.in_(matching))
        )
    organisations = db_session().scalars(statement).all()
    return render_template("console/members.html", organisations=organisations, query=query)


def _contact_page(contact: Contact, status: int = 200, **forms: object) -> ResponseReturnValue:
    form = forms.get("form") or ContactForm(
        formdata=None, obj=contact, language=contact.language.value
    )
    page = dict(
        contact=contact,
        form=form,
        reason_form=forms.get("reason_form") or ReasonForm(formdata=None),
        erase_form=forms.get("erase_form") or EraseForm(formdata=None),
        button=ButtonForm(),
        suppressed=operations.is_suppressed(db_session(), contact.email),
        problem=forms.get("problem", ""),
    )
    return render_template("console/contact.html", **page), status


@bp.route("/console/contacts/<contact_id>", methods=["GET", "POST"])
def contact(contact_id: str) -> ResponseReturnValue:
    found = record(Contact, contact_id)
    if request.method == "GET":
        return _contact_page(found)
    form = ContactForm()
    if not form.validate_on_submit():
        return _contact_page(found, 400, form=form)
    try:
        asked = editing.edit_contact(
            db_session(),
            found,
            ContactDetails(
                name=form.name.data,
                role=form.role.data or "",
                phone=form.phone.data or "",
                language=form.language.data,
                email=form.email.data,
            ),
            now=now(),
        )
    except MemberError as exc:
        db_session().rollback()
        problem = (
            _("Nothing was changed.")
            if "nothing" in str(exc)
            else _("This address belongs to another contact, or gets no mail from the group.")
        )
        return _contact_page(record(Contact, contact_id), 400, form=form, problem=problem)
    db_session().commit()
    flash(_("Saved. The new address gets a link to confirm it.") if asked else _("Saved."))
    return redirect(url_for(".contact", contact_id=found.id), code=303)


@bp.route("/console/contacts/<contact_id>/active", methods=["POST"])
def contact_active(contact_id: str) -> ResponseReturnValue:
    found = record(Contact, contact_id)
    active = request.form.get("active") == "yes"
    try:
        editing.set_active(db_session(), found, active=active, now=now())
    except MemberError:
        abort(409)
    db_session().commit()
    flash(_("Reactivated: they get the group's mail again.") if active else _("Deactivated."))
    return redirect(url_for(".contact", contact_id=found.id), code=303)


@bp.route("/console/contacts/<contact_id>/lift", methods=["POST"])
def lift_suppression(contact_id: str) -> ResponseReturnValue:
    found = record(Contact, contact_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _contact_page(found, 400, reason_form=form)
    try:
        editing.lift_suppression(db_session(), found, reason=form.reason.data, now=now())
    except MemberError:
        abort(409)
    db_session().commit()
    flash(_("The address gets mail again."))
    return redirect(url_for(".contact", contact_id=found.id), code=303)


@bp.route("/console/contacts/<contact_id>/erase", methods=["POST"])
def erase(contact_id: str) -> ResponseReturnValue:
    found = record(Contact, contact_id)
    form = EraseForm()
    if not form.validate_on_submit():
        return _contact_page(found, 400, erase_form=form)
    organisation_id = found.organisation_id
    erasure.erase_contact(db_session(), found, actor=actor(), now=now())
    db_session().commit()
    flash(_("The person is erased. Only a pseudonymous trace stays in the activity log."))
    return redirect(url_for(".organisation", organisation_id=organisation_id), code=303)


def _organisation_page(
    organisation: Organisation, status: int = 200, **forms: object
) -> ResponseReturnValue:
    others = db_session().scalars(
        select(Organisation).where(Organisation.id != organisation.id).order_by(Organisation.name)
    )
    merge = forms.get("merge_form") or MergeForm(formdata=None)
    merge.into.choices = [(str(other.id), other.name) for other in others]  # type: ignore[attr-defined]
    page = dict(
        organisation=organisation,
        colleague_form=forms.get("colleague_form") or ColleagueForm(formdata=None),
        merge_form=merge,
        problem=forms.get("problem", ""),
    )
    return render_template("console/organisation.html", **page), status


@bp.route("/console/organisations/<organisation_id>")
def organisation(organisation_id: str) -> ResponseReturnValue:
    return _organisation_page(record(Organisation, organisation_id))


@bp.route("/console/organisations/<organisation_id>/colleague", methods=["POST"])
def add_colleague(organisation_id: str) -> ResponseReturnValue:
    found = record(Organisation, organisation_id)
    form = ColleagueForm()
    if not form.validate_on_submit():
        return _organisation_page(found, 400, colleague_form=form)
    try:
        editing.add_colleague(
            db_session(),
            found,
            name=form.name.data,
            email=form.email.data,
            language=form.language.data,
            actor=actor(),
            now=now(),
        )
    except MemberError:
        db_session().rollback()
        problem = _("This address belongs to another contact, or gets no mail from the group.")
        return _organisation_page(
            record(Organisation, organisation_id), 400, colleague_form=form, problem=problem
        )
    db_session().commit()
    flash(_("Added. They get a link to confirm their address before any other mail."))
    return redirect(url_for(".organisation", organisation_id=found.id), code=303)


@bp.route("/console/organisations/<organisation_id>/merge", methods=["POST"])
def merge(organisation_id: str) -> ResponseReturnValue:
    found = record(Organisation, organisation_id)
    form = MergeForm()
    form.into.choices = [
        (str(o.id), o.name)
        for o in db_session().scalars(select(Organisation).where(Organisation.id != found.id))
    ]
    if not form.validate_on_submit():
        return _organisation_page(found, 400, merge_form=form)
    target = record(Organisation, form.into.data)
    moved = editing.merge_organisations(db_session(), found, target, now=now())
    db_session().commit()
    flash(_("Merged: %(count)s contacts moved to %(name)s.", count=moved, name=target.name))
    return redirect(url_for(".organisation", organisation_id=target.id), code=303)


@bp.route("/address/<token>", methods=["GET", "POST"])
def confirm_address(token: str) -> ResponseReturnValue:
    """The owner of a changed address confirms it: GET shows one button, its POST confirms."""
    lookup, found = editing.find_address_change(db_session(), token, now=now())
    if lookup.token is None or found is None:
        abort(404)
    g.language_hint = found.language.value
    form = ButtonForm()
    usable = lookup.valid
    if request.method == "POST" and usable:
        if not form.validate_on_submit():
            return render_template("console/address_confirm.html", form=form, usable=True), 400
        if editing.confirm_address_change(db_session(), token, now=now()) is None:
            return render_template("console/address_confirm.html", form=form, usable=False), 410
        db_session().commit()
        return render_template("console/address_confirm.html", form=form, done=True)
    status = 200 if usable else 410
    return render_template("console/address_confirm.html", form=form, usable=usable), status
