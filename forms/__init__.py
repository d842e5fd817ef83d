"""The FlaskForm classes and their validators. Imports nothing of the project."""

from forms.actions import ConfirmForm, ReviewForm
from forms.join import JoinForm

__all__ = ["ConfirmForm", "JoinForm", "ReviewForm"]
