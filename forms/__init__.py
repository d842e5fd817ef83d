"""The FlaskForm classes and their validators. Imports nothing of the project."""

from forms.actions import ConfirmForm, ReviewForm
from forms.join import JoinForm
from forms.member import (
    ColleagueForm,
    LeaveForm,
    MeetingAnswerForm,
    MemberDetailsForm,
    StopMailForm,
)
from forms.review import SameNameReviewForm
from forms.rsvp import PreferencesForm, RsvpForm, UnsubscribeForm

__all__ = [
    "ColleagueForm",
    "ConfirmForm",
    "JoinForm",
    "LeaveForm",
    "MeetingAnswerForm",
    "MemberDetailsForm",
    "PreferencesForm",
    "ReviewForm",
    "RsvpForm",
    "SameNameReviewForm",
    "StopMailForm",
    "UnsubscribeForm",
]
