"""One rule for control characters, shared by the forms, the roster, the calendar and the reader."""

from __future__ import annotations

import pytest

from emails.text import has_control_characters, printable

KHMER_WITH_WORD_BREAKS = "ក្រុម\u200bការងារ"  # a zero-width space is how Khmer marks a word break


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x0c", "\x7f", "\x85", "\x9f"])
def test_controls_are_refused_in_one_line_and_in_many(control: str) -> None:
    assert has_control_characters(f"a{control}b")
    assert has_control_characters(f"a{control}b", multiline=True)
    assert printable(f"a{control}b") == "ab"


def test_line_breaks_are_allowed_only_where_the_text_has_several_lines() -> None:
    for text in ("one\ntwo", "one\r\ntwo"):
        assert has_control_characters(text)
        assert not has_control_characters(text, multiline=True)
    assert has_control_characters("one\rtwo", multiline=True)  # a lone CR is nothing anyone typed


def test_tabs_khmer_and_its_word_breaks_pass() -> None:
    for text in ("name\twith tab", KHMER_WITH_WORD_BREAKS, "Đặng Thị"):
        assert not has_control_characters(text)
        assert printable(text) == text
    assert printable("keeps\tline\r\nends") == "keeps\tline\r\nends"
