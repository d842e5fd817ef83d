"""Announcements are Markdown: rendered, then sanitised to a few tags and safe link schemes."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.db import session_scope
from service.notices.announcements import announce, render_markdown

TAGS = {
    "p", "br", "strong", "em", "a", "ul", "ol", "li", "blockquote", "code", "pre", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title", "rel"}, "ol": {"start"}}


class Elements(HTMLParser):
    """(tag, attributes) of every element of an HTML fragment."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def hrefs(self) -> list[str | None]:
        return [attrs.get("href") for tag, attrs in self.found if tag == "a"]


def test_quotes_autolinks_and_code_render_as_markdown():
    html = render_markdown(
        "> The judgment is near.\n\n"
        "Read <https://example.org/judgment?case=002&part=2>.\n\n"
        "Type `a < b` or:\n\n    wg members export > members.csv\n"
    )

    assert "<blockquote>\n<p>The judgment is near.</p>\n</blockquote>" in html
    assert 'href="https://example.org/judgment?case=002&amp;part=2"' in html
    assert ">https://example.org/judgment?case=002&amp;part=2</a>" in html
    assert "<code>a &lt; b</code>" in html
    assert "<pre><code>wg members export &gt; members.csv\n</code></pre>" in html


def test_single_line_breaks_in_a_signature_are_kept():
    html = render_markdown("With regards,\nSokha Chan\nCoordinator")

    assert html == "<p>With regards,<br>\nSokha Chan<br>\nCoordinator</p>"


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "%6Aavascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "file:///etc/passwd",
        "/relative/path",
    ],
)
def test_a_link_with_another_scheme_loses_its_target(link):
    html = render_markdown(f"[Open the verdict]({link}) and [ours](https://example.org/v)")

    assert Elements(html).hrefs() == [None, "https://example.org/v"]
    assert "Open the verdict</a>" in html


def test_http_https_and_mailto_links_are_kept():
    html = render_markdown(
        "[a](http://example.org/a) [b](https://example.org/b) [c](mailto:wg@example.org) "
        "<wg@example.org>"
    )

    assert Elements(html).hrefs() == [
        "http://example.org/a",
        "https://example.org/b",
        "mailto:wg@example.org",
        "mailto:wg@example.org",
    ]


def test_raw_html_in_the_source_is_shown_as_text():
    html = render_markdown(
        '<script>alert(1)</script>\n\n<img src=x onerror=alert(2)> <a href="javascript:x">y</a>'
    )

    assert Elements(html).found == [("p", {}), ("p", {})]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


# Pieces of Markdown, HTML and URLs, so that generated sources are links, tags and quotes.
PIECES = [
    "[x](", "](", ")", "<", ">", "> ", "javascript:", "JaVaScRiPt:", "https://a.example/",
    "mailto:", "data:", "//", "&#106;", "&", "`", "```", "*", "_", "!", "#", "- ", "1. ",
    "\n", "\n\n", " ", "\t", '"', "'", "<script>", "<a href=", "<img src=x onerror=", "=",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@example(text="[x](javascript:alert(1)) <https://a.example/> > quote")
@given(text=st.lists(st.sampled_from(PIECES), max_size=30).map("".join) | st.text(max_size=80))
def test_any_source_gives_only_allowed_tags_attributes_and_schemes(text):
    for tag, attrs in Elements(render_markdown(text)).found:
        assert tag in TAGS
        assert set(attrs) <= ATTRIBUTES.get(tag, set())
        if attrs.get("href") is not None:
            assert urlsplit(attrs["href"]).scheme in ("http", "https", "mailto")


def test_a_delivered_announcement_carries_the_quote_and_no_script_link(
    app, clock, deliver, smtp_server, make_member
):
    make_member("amara@riverbank.example")
    with app.app_context(), session_scope(app) as db:
        announce(
            db,
            subject_en="The verdict",
            body_en="> Justice delayed\n\n[Read it](javascript:alert(1))\n\nSokha\nWG",
            now=clock(),
        )
    deliver()

    html = smtp_server.single_message_to("amara@riverbank.example").html
    assert "<blockquote>" in html
    assert "javascript:" not in html
    assert "Sokha<br>" in html
