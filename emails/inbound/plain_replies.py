"""Plain replies: the reader's own words, and the answer (yes, no, maybe) they give.

`own_words` cuts the quoted invitation and the signature away; `read_answer` reads yes, no or
maybe from the first lines of what is left, in English and in Khmer. Both are usable alone.
"""

from __future__ import annotations

import re
import unicodedata

from emails.inbound.kinds import Answer
from emails.inbound.parsing import ZERO_WIDTH, unzero

LONGEST_TEXT = 100_000

_ATTRIBUTION = (
    re.compile(r"^\s*on\b.{0,300}\bwrote\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*le\b.{0,300}\ba écrit\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.I | re.S),
    re.compile(r"^\s*el\b.{0,300}\bescribió\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*នៅ.{0,300}បាន\s*សរសេរ\s*[៖:]?\s*$", re.S),
)
_CUT_LINE = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|forwarded message|message d'origine"
    r"|ursprüngliche nachricht|mensaje original)\s*-{2,}"
    r"|_{10,}"
    r"|begin forwarded message:)",
    re.I,
)
_SIGNATURE = re.compile(
    r"^(?:--\s*$|sent from my \w+|sent from (?:mail|outlook|yahoo|gmail)\b|get outlook for\b"
    r"|sent with proton mail|sent via )",
    re.I,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|ពី|von|de)\s*\*?\s*:\s*\S", re.I)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|បានផ្ញើ|gesendet|envoyé|enviado)\s*\*?\s*:\s*\S", re.I
)


def _is_attribution(lines: list[str], index: int) -> int:
    """How many lines from `index` make an "On ... wrote:" line (Gmail may fold it); 0 if none."""
    for span in (1, 2, 3):
        if index + span > len(lines):
            break
        joined = unzero(" ".join(line.strip() for line in lines[index : index + span]))
        if any(pattern.match(joined) for pattern in _ATTRIBUTION):
            return span
    return 0


def _is_header_block(lines: list[str], index: int) -> bool:
    """Outlook's quoted header block: "From: ..." with "Sent:" or "Date:" in the next lines."""
    if not _HEADER_FROM.match(unzero(lines[index])):
        return False
    return any(_HEADER_SENT.match(unzero(line)) for line in lines[index + 1 : index + 5])


def own_words(text: str) -> str:
    """The writer's own words: the text above the quoted history and the signature.

    Cuts at the first line quoted with ">", an "On ... wrote:" attribution (also folded over
    two or three lines, and in Khmer, French, German, Spanish), "-----Original Message-----",
    an Outlook "From: / Sent:" header block, a "____" separator, a "-- " signature line or a
    "Sent from my iPhone"-style footer. When nothing is left above the quote (a bottom-posted
    answer), the unquoted lines below it are taken instead. Only the first LONGEST_TEXT
    characters are read: a person's answer is never further down than that.
    """
    text = text[:LONGEST_TEXT]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    quoted_from = None
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if (
            stripped.startswith(">")
            or _is_attribution(lines, index)
            or _CUT_LINE.match(line)
            or _is_header_block(lines, index)
        ):
            quoted_from = index
            break
        if _SIGNATURE.match(line.strip()):
            break
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    if result or quoted_from is None:
        return result
    return _bottom_posted(lines[quoted_from:])


def _bottom_posted(lines: list[str]) -> str:
    """The unquoted lines of a bottom-posted answer, up to its signature."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        span = _is_attribution(lines, index)
        if span:
            index += span
            continue
        if line.lstrip().startswith(">"):
            index += 1
            continue
        if (
            _SIGNATURE.match(line.strip())
            or _CUT_LINE.match(line)
            or _is_header_block(lines, index)
        ):
            break
        kept.append(line.rstrip())
        index += 1
    return "\n".join(kept).strip()


# --- answers ------------------------------------------------------------------------------

_KM_BEFORE = r"(?<!\u17d2)"  # not the subscript (coeng) half of a cluster
_KM_AFTER = r"(?![\u17b6-\u17d3\u17dd])"  # not followed by a vowel sign: not a longer word


def _english(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + "|".join(phrases) + r")(?![\w'])", re.M)


def _khmer(*phrases: str) -> re.Pattern[str]:
    return re.compile(_KM_BEFORE + "(?:" + "|".join(phrases) + ")" + _KM_AFTER)


_CANT = r"(?:can't|cannot|can\s+not|couldn't|could\s+not)"
_WONT = r"(?:won't|will\s+not|wouldn't|would\s+not|shan't|i'll\s+not)"
_GO = r"(?:attend|come|join|make\s+it|be\s+there|participate)"

# Phrases that look like answers and are not: removed before anything else.
_NEUTRAL = _english(
    r"no\s+(?:problems?|worries|doubts?|objections?|issues?|questions?|comments?|changes?)",
    r"no\s*-?\s*one",
    r"no\.\s*\d+",
    r"yes\s+or\s+no",
    r"yes/no/maybe",
    r"yes/no",
)
_NO = (
    _english(
        rf"{_CANT}\s+{_GO}",
        rf"{_WONT}\s+(?:be\s+able|{_GO}|be\s+attending|be\s+coming|be\s+joining)",
        rf"(?:not\s+(?:be\s+)?able|unable)\s+to(?:\s+{_GO})?",
        r"not\s+(?:be\s+)?(?:attend(?:ing)?|com(?:e|ing)|join(?:ing)?|participat(?:e|ing))",
        rf"(?:don't|do\s+not)\s+think\s+i\s+(?:can|will|'ll|could)\s+{_GO}",
        r"(?:maybe|perhaps|hopefully)\s+next\s+time",
        r"regret\w*",
        r"declin(?:e|ed|ing)",
        r"count\s+me\s+out",
        r"unavailable",
        r"not\s+available",
        # "no" as an answer: a sentence of its own or its first word ("No, sorry", "Sadly
        # no."), not a determiner in the middle of one ("we have no projector").
        r"(?:^|(?<=[.!?,;:(])|(?<=[.!?,;:(]\s))no",
        r"no(?=\s*(?:[.!?,;:)]|$))",
        r"no\s+thanks?(?:\s+you)?",
        r"nope",
    ),
    _khmer(
        r"(?:មិនទាន់|មិន|អត់|ពុំ)\s*(?:អាច|បាន)?\s*(?:ចូលរួម|មក|ទៅ)",
        r"អត់ទេ",
        r"បដិសេធ",
    ),
)
_MAYBE = (
    _english(
        rf"not\s+(?:yet\s+)?(?:sure|certain)(?:\s+(?:if|whether|that))?(?:\s+i(?:'ll)?)?"
        rf"(?:\s+(?:can|could|will|would|be\s+able\s+to))?(?:\s+{_GO})?",
        rf"(?:i'll|i\s+will)\s+try(?:\s+to\s+{_GO})?",
        rf"try\s+to\s+{_GO}",
        r"maybe",
        r"perhaps",
        r"possibly",
        r"probably",
        r"tentative(?:ly)?",
        r"unsure",
        r"uncertain",
        r"might",
        r"may\s+be\s+able",
        r"to\s+be\s+confirmed",
        r"tbc",
    ),
    _khmer(
        r"ប្រហែល(?:ជា)?(?:\s*ខ្ញុំ)?(?:\s*នឹង)?(?:\s*អាច)?(?:\s*ចូលរួម|\s*មក)?",
        r"មិន(?:ទាន់)?(?:ប្រាកដ|ច្បាស់)",
        r"(?:នឹង)?ព្យាយាម(?:\s*ចូលរួម|\s*មក)?",
    ),
)
# "Yes" itself: conflicts with a "no" or a "maybe" (then the answer is ambiguous).
_YES_STRONG = (
    _english(
        r"yes",
        r"yep",
        r"yeah",
        r"yup",
        r"of\s+course",
        r"count\s+me\s+in",
        r"absolutely",
    ),
)
# Words of coming: they give "yes" alone, and give way to a "no" or a "maybe" next to them
# ("I am not sure I can attend"; the Khmer politeness particles បាទ/ចាស open "no" answers too).
_YES_WEAK = (
    _english(
        rf"(?:i\s+will|i'll|we\s+will|we'll|i\s+can|we\s+can|will)\s+{_GO}",
        r"(?:i'll|i\s+will|we'll|we\s+will)\s+be\s+(?:attending|joining)",
        r"attending",
        r"see\s+you\s+(?:there|then)",
        r"i\s+confirm",
        r"(?:happy|glad|pleased)\s+to\s+(?:attend|come|join)",
    ),
    _khmer(r"បាទ", r"ចាស", r"ចូលរួម", r"(?:ខ្ញុំ\s*)?(?:នឹង|អាច)\s*មក", r"យល់ព្រម"),
)
# Khmer ទេ is "no" only as the whole answer or its first word ("ទេ អរគុណ").
_KM_TE_FIRST = re.compile(r"^ទេ(?![\u1780-\u17d3\u17dd])|^ទេ(?=អរគុណ|បាទ|ចាស)")
_LEADING_MARKS = re.compile(r"^[\s\W_]+")


def _answer_window(text: str) -> str:
    """The first three non-empty lines, at most 300 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:3])[:300]


def read_answer(text: str) -> Answer | None:
    """Yes, no or maybe, read from the first lines of the writer's own words; None if unclear.

    English is matched by whole words, case-insensitively ("no" is not "now", "know",
    "November"; "yes" is not "yesterday"); Khmer, written without spaces between words, by
    substring, never inside a longer cluster. Negations are read before the words they contain
    ("មិនអាចចូលរួម", "not able to attend") and taken out of the text before looking further.
    "yes" together with "no" or "maybe" is ambiguous (None); a word of coming ("I will attend",
    "ចូលរួម", បាទ/ចាស) gives way to a "no" or "maybe" beside it.
    """
    window = _answer_window(own_words(text))
    if not window:
        return None
    window = unicodedata.normalize("NFC", window).lower()
    window = re.sub(r"[^\S\n]+", " ", window)
    window = window.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    spaced = ZERO_WIDTH.sub(" ", window)
    window = unzero(window)
    window = _NEUTRAL.sub(" ", window)

    found: set[str] = set()
    if _KM_TE_FIRST.search(_LEADING_MARKS.sub("", spaced)):
        found.add("no")
        window = _LEADING_MARKS.sub("", window)[2:]
    for name, patterns in (
        ("no", _NO),
        ("maybe", _MAYBE),
        ("yes", _YES_STRONG),
        ("coming", _YES_WEAK),
    ):
        for pattern in patterns:
            window, count = pattern.subn(" ", window)
            if count:
                found.add(name)

    answers = found - {"coming"}
    if not answers:
        return Answer.YES if "coming" in found else None
    if len(answers) == 1:
        return Answer(answers.pop())
    return None
