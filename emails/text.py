"""Control characters: the one definition of what may not reach a header, a database or a terminal.

Forms refuse them, the roster import refuses them, the calendar writer and the inbound reader
drop them. Khmer's zero-width spaces are format characters, not controls, and stay.
"""

from __future__ import annotations

import re

# C0 controls but TAB, LF and CR; DEL; C1 controls.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without control characters (TAB and line ends are kept)."""
    return CONTROL_CHARACTERS.sub("", text)


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    """Whether `value` holds a control character; tabs pass, line breaks only if `multiline`."""
    if CONTROL_CHARACTERS.search(value):
        return True
    if multiline:
        return "\r" in value.replace("\r\n", "")  # a lone CR is no line break anyone typed
    return "\n" in value or "\r" in value
