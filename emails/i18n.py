"""Gettext catalogues read straight from their .po files, so no compiled .mo is kept in git."""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "km")
DEFAULT_LANGUAGE = "en"


@cache
def load_translations(directory: str, lang: str, domain: str = "messages") -> NullTranslations:
    """The catalogue of `lang` under `directory`, compiled in memory once per process.

    English is the source language, so it has no catalogue and gets the msgids as they are.
    """
    po = Path(directory) / lang / "LC_MESSAGES" / f"{domain}.po"
    if lang == DEFAULT_LANGUAGE or not po.exists():
        return NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=domain)
