"""The review of a join request whose organisation has the name of a member already."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask_babel import lazy_gettext as _l
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice

from forms.actions import ReviewForm


class SameNameReviewForm(ReviewForm):
    """Approve or decline, and, when approving, where the people go: into the organisation
    that is a member already, or into a new one of the same name."""

    destination = RadioField(
        _l("Where do these people go?"),
        choices=[
            SelectChoice("existing", _l("Add them to the member organisation")),
            SelectChoice("new", _l("Make a new organisation of the same name")),
        ],
        validate_choice=False,
    )

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid = super().validate(extra_validators)
        if self.decision.data == "approve" and self.destination.data not in ("existing", "new"):
            self.destination.errors = [
                *self.destination.errors,
                _l("Choose whether these people join the organisation that is a member already."),
            ]
            valid = False
        return valid
