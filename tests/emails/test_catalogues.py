"""Every user-facing text exists in Khmer: the catalogues cover every string in the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = {
    "babel-emails.cfg": ROOT / "emails/translations/km/LC_MESSAGES/messages.po",
    "babel-web.cfg": ROOT / "service/translations/km/LC_MESSAGES/messages.po",
}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def source_strings(config: str) -> set[str]:
    with open(ROOT / config) as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("config", CATALOGUES)
def test_every_string_in_the_code_has_a_khmer_translation(config):
    with CATALOGUES[config].open("rb") as handle:
        catalogue = read_po(handle)
    translated = {m.id: m.string for m in catalogue if m.id and m.string and not m.fuzzy}

    missing = sorted(source_strings(config) - set(translated))

    assert not missing, "untranslated (run pybabel extract/update, then translate):\n" + "\n".join(
        missing
    )


@pytest.mark.parametrize("config", CATALOGUES)
def test_khmer_translations_are_khmer_and_keep_their_placeholders(config):
    with CATALOGUES[config].open("rb") as handle:
        catalogue = read_po(handle)
    for message in catalogue:
        if not message.id:
            continue
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(
            PLACEHOLDER.findall(message.id)
        ), message.id
        if re.search("[A-Za-z]{4,}", PLACEHOLDER.sub("", message.id)):
            assert re.search("[\u1780-\u17ff]", message.string), f"not in Khmer: {message.id}"
