"""Read the service's mailbox: what kind of message came back, and what it says.

Pure parsing, no database, no IMAP, no Flask: `classify(raw, secret=...)` takes the bytes of
one message and returns an `Inbound`, and never raises. One module per kind of message:
`bounces`, `calendar_replies`, `auto_replies`, `plain_replies`; `parsing` reads headers and
parts safely for all of them, `authentication` the receiving server's verdict on the sender.

What a message says is not what may be believed: the service acts on a bounce only when it is
tied to a message it sent (`Inbound.return_path_numbers`, `Bounce.original_message_id`), and on
an answer only when it comes from the invitee and is tied to the invitation.

`own_words`, `read_answer` and `html_to_text` are usable on their own.
"""

from emails.inbound.classifier import classify
from emails.inbound.html_text import html_to_text
from emails.inbound.kinds import Answer, Bounce, CalendarReply, Inbound, Kind, Reply
from emails.inbound.parsing import MAX_REFERENCES
from emails.inbound.plain_replies import own_words, read_answer

__all__ = [
    "MAX_REFERENCES",
    "Answer",
    "Bounce",
    "CalendarReply",
    "Inbound",
    "Kind",
    "Reply",
    "classify",
    "html_to_text",
    "own_words",
    "read_answer",
]
