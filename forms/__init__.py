"""The FlaskForm classes and their validators. Imports nothing of the project."""

from forms.actions import ConfirmForm, ReviewForm
from forms.join import JoinForm
from forms.rsvp import PreferencesForm, RsvpForm, UnsubscribeForm

__all__ = [
    "ConfirmForm",
    "JoinForm",
    "PreferencesForm",
    "ReviewForm",
    "RsvpForm",
    "UnsubscribeForm",
]
