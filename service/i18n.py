"""The language of a page: ?lang=, then the cookie, then Accept-Language, then English."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from babel.support import NullTranslations
from flask import Flask, Response, g, request
from flask_babel import Babel, Domain, get_locale
from werkzeug.datastructures import MultiDict

from emails.i18n import DEFAULT_LANGUAGE, LANGUAGES, load_translations

TRANSLATIONS = Path(__file__).parent / "translations"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600


def select_language() -> str:
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    # A page about one member (their RSVP, their unsubscribe) speaks the member's language.
    hint = g.get("language_hint", "")
    if hint in LANGUAGES:
        return hint
    remembered = request.cookies.get(COOKIE, "")
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def current_language() -> str:
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


class CatalogueDomain(Domain):
    """Flask-Babel's domain, reading the .po catalogue directly (no compiled .mo in git)."""

    def get_translations(self) -> NullTranslations:
        return load_translations(str(TRANSLATIONS), current_language())


def remember_language(response: Response) -> Response:
    """Keep a language chosen with ?lang= for the next pages."""
    asked = request.args.get("lang", "")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(COOKIE, asked, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
    return response


def url_in_language(lang: str) -> str:
    """This page's address with ?lang= set to `lang` (the visible language switch).

    Leading slashes and backslashes are made one slash: a browser reads `//host/...` and
    `/\\host/...` as another site, so a link to /\\evil.example would lead there.
    """
    args = MultiDict(request.args)
    args["lang"] = lang
    path = "/" + request.path.lstrip("/\\")
    return f"{path}?{urlencode(list(args.items(multi=True)))}"


def init_app(app: Flask) -> None:
    babel = Babel(app, locale_selector=select_language, default_locale=DEFAULT_LANGUAGE)
    babel.domain_instance = CatalogueDomain()
    app.after_request(remember_language)
    app.jinja_env.globals.update(current_language=current_language, url_in_language=url_in_language)
