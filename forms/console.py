"""The coordinators' console: sign-in and the forms of its pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import InputRequired, Length, Regexp

from forms.validators import SingleLine, normalise_text


def lower_address(value: str | None) -> str:
    return normalise_text(value).lower()


class SignInForm(FlaskForm):
    """The address a sign-in link is sent to, when it is a coordinator's. Only compared with
    the list, so any address-shaped text will do."""

    email = StringField(
        _l("Your email address"),
        [
            InputRequired(_l("Give your email address.")),
            Length(max=254),
            SingleLine(),
            Regexp(
                r"^[^@\s]+@[^@\s]+$", message=_l("Enter an email address such as name@example.org.")
            ),
        ],
        filters=[lower_address],
    )


class ButtonForm(FlaskForm):
    """A form of one button (sign in with a link, sign out): only its CSRF token."""
