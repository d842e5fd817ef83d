"""HTML bodies as plain text, without the quoted history that mail programs append."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Hostile HTML must cost little: the parser reads this much, a slice at a time (html.parser
# rescans what it holds for each unfinished tag), and an end tag looks this deep for its start.
LONGEST_HTML = 500_000
SLICE = 8_192
DEEPEST_END_TAG_SEARCH = 64
# A "<" that opens no tag (no ">" before the next "<") is text: escaped before parsing, since
# html.parser scans to the end of its input for each one ("<a<a<a...": quadratic).
_NOT_A_TAG = re.compile(r"<(?![A-Za-z/!?][^<>]*>)")


class _HtmlText(HTMLParser):
    """HTML to plain text, leaving out quoted history (blockquote, Gmail's quote) and scripts."""

    _VOID = frozenset(
        {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
    )
    _BLOCK = frozenset({
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "table",
        "ul",
        "ol",
        "pre",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
    })
    _SKIP_TAGS = frozenset({"blockquote", "style", "script", "head", "title", "template"})
    _SKIP_CLASSES = frozenset(
        {"gmail_quote", "gmail_signature", "moz-cite-prefix", "moz-signature"}
    )
    _SKIP_IDS = frozenset({"divrplyfwdmsg"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.skipped = 0  # how many entries of the stack are skipped ones
        self.out: list[str] = []

    @property
    def skipping(self) -> bool:
        return self.skipped > 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")
        if tag in self._VOID:
            return
        attributes = {name.lower(): (value or "") for name, value in attrs}
        classes = set(attributes.get("class", "").lower().split())
        skip = (
            tag in self._SKIP_TAGS
            or bool(classes & self._SKIP_CLASSES)
            or attributes.get("id", "").lower() in self._SKIP_IDS
        )
        self.stack.append((tag, skip))
        self.skipped += skip

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        deepest = max(-1, len(self.stack) - 1 - DEEPEST_END_TAG_SEARCH)
        for position in range(len(self.stack) - 1, deepest, -1):
            if self.stack[position][0] == tag:
                self.skipped -= sum(skip for _tag, skip in self.stack[position:])
                del self.stack[position:]
                break
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """A simple text rendering of an HTML body, without its quoted history."""
    parser = _HtmlText()
    html = _NOT_A_TAG.sub("&lt;", html[:LONGEST_HTML])
    try:
        for start in range(0, len(html), SLICE):
            parser.feed(html[start : start + SLICE])
        parser.close()
    except Exception:
        pass
    text = "".join(parser.out).replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
