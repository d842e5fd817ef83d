"""The name of every email: one name = templates/<name>.txt + templates/<name>.html."""

# Joining
JOIN_CONFIRM = "join_confirm"
JOIN_REQUEST_RECEIVED = "join_request_received"
JOIN_WELCOME = "join_welcome"
JOIN_DECLINED = "join_declined"
JOIN_ALREADY_MEMBER = "join_already_member"  # a member used the join form: their own page
JOIN_KNOWN_MEMBER = "join_known_member"  # to the coordinators: that a member used the form
CONTACT_ADDRESS_CONFIRM = "contact_address_confirm"  # a member's new address, to its owner
MEMBER_LEFT = "member_left"  # to the coordinators: someone left the group on their own page

# Meetings
MEETING_INVITATION = "meeting_invitation"  # also the update after a change, with `change` set
MEETING_FOLLOWUP = "meeting_followup"
MEETING_REMINDER = "meeting_reminder"
MEETING_CANCELLED = "meeting_cancelled"
MEETING_SUBSTITUTE = "meeting_substitute"  # the details, to a colleague named in someone's place
MEETING_CORRECTED = "agenda_corrected"  # a meeting's title or agenda corrected, nothing moved

# News and the coordinators
ANNOUNCEMENT = "announcement"
DIGEST = "digest"
CONSOLE_SIGN_IN = "console_sign_in"  # a coordinator's one-time link into the console

ALL: tuple[str, ...] = (
    JOIN_CONFIRM,
    JOIN_REQUEST_RECEIVED,
    JOIN_WELCOME,
    JOIN_DECLINED,
    JOIN_ALREADY_MEMBER,
    JOIN_KNOWN_MEMBER,
    CONTACT_ADDRESS_CONFIRM,
    MEMBER_LEFT,
    MEETING_INVITATION,
    MEETING_FOLLOWUP,
    MEETING_REMINDER,
    MEETING_CANCELLED,
    MEETING_SUBSTITUTE,
    MEETING_CORRECTED,
    ANNOUNCEMENT,
    DIGEST,
    CONSOLE_SIGN_IN,
)
