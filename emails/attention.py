"""Why a message that came back needs a person: the reasons the coordinators' digest lists.

A reason is kept as its name and the words that fill it in, not as a finished sentence, so
each coordinator's digest says it in their own language; `str()` gives the English for logs
and the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def _(text: str) -> str:
    """Marks a text for the catalogue; the digest template translates it when it renders."""
    return text


REASONS: dict[str, str] = {
    "dmarc_failed": _(
        "The sender's domain failed DMARC at our server (From: %(sender)s); "
        "nothing was done with it."
    ),
    "unreadable": _("It could not be read: %(problem)s"),
    "unprocessable": _("It could not be processed (%(error)s) and is kept for a person to read."),
    "unrelated": _("It is not a reply to anything the service sent."),
    "unknown_unsubscribe": _("An unsubscribe request with an unknown token."),
    "unknown_event": _("A calendar answer for an unknown event (%(uid)s)."),
    "calendar_for_another": _(
        "A calendar answer for %(attendee)s sent by %(sender)s: only the invitee may answer."
    ),
    "calendar_not_invited": _(
        "A calendar answer from %(sender)s, who was not invited to this meeting."
    ),
    "calendar_untied": _(
        "A calendar answer from %(sender)s tied neither to their invitation's event nor to "
        "its mail; nothing was done with it."
    ),
    "reply_not_to_invitation": _("A reply, but not to an invitation."),
    "reply_from_another": _("A reply about the invitation of %(invitee)s, sent by %(sender)s."),
    "reply_unclear": _("A reply to an invitation without a clear answer."),
    "bounce_untied": _(
        "A bounce (%(status)s) naming %(recipient)s, tied to no message the service sent; "
        "nothing was done with it."
    ),
    "sending_refused": _(
        "A sending problem: %(recipient)s refused our mail (%(status)s): %(diagnostic)s"
    ),
    "bounce_not_member": _("A bounce for %(recipient)s, who is not a member."),
}

# A reason's words come from the message (addresses, a server's diagnostic): kept short.
ARGUMENT_LENGTH = 300


@dataclass(frozen=True)
class Attention:
    """One reason of REASONS and the words that fill it in."""

    reason: str
    args: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown reason {self.reason!r}")
        words = {name: str(value)[:ARGUMENT_LENGTH] for name, value in self.args.items()}
        object.__setattr__(self, "args", words)

    @property
    def text(self) -> str:
        """The English sentence with its placeholders: the msgid the digest translates."""
        return REASONS[self.reason]

    def __str__(self) -> str:
        return self.text % self.args
