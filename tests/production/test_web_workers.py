"""`wg web` (gunicorn) serves every visitor as their own: a session, a form token, a language."""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from tests.mail import free_port
from tests.processes import base_environment, run_wg, wg_server
from tests.web import CSRF, join_form

pytestmark = pytest.mark.usefixtures("smtp_server")


class Visitor:
    """One browser: its own cookie jar and language."""

    def __init__(self, base: str, accept_language: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.opener.addheaders = [("Accept-Language", accept_language)]

    def get(self, path: str) -> tuple[str, dict[str, str]]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.read().decode(), dict(error.headers)

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(self.base + path, data=data, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture
def web(tmp_path, smtp_server):
    environment = base_environment(
        WG_INSTANCE_PATH=str(tmp_path / "instance"),
        WG_DATABASE_URL=f"sqlite:///{tmp_path / 'wg.sqlite3'}",
        WG_SECRET_KEY="test-secret",
        WG_SMTP_HOST="127.0.0.1",
        WG_SMTP_PORT=str(smtp_server.port),
    )
    assert run_wg(environment, "db", "upgrade").returncode == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # One worker: every visitor is served by the same process, as on a quiet day.
    with wg_server(
        environment,
        "web", "--port", str(port), "--workers", "1",
        log=tmp_path / "web.log",
        ready_url=base + "/healthz",
    ) as server:
        yield base, server


def test_two_visitors_of_one_worker_get_their_own_form_token_and_language(web):
    base, _server = web
    khmer, english = Visitor(base, "km"), Visitor(base, "en-US,en;q=0.8")

    khmer_page, khmer_headers = khmer.get("/join")
    english_page, english_headers = english.get("/join")

    assert 'lang="km"' in khmer_page and 'lang="en"' in english_page
    assert "Set-Cookie" in khmer_headers and "Set-Cookie" in english_headers
    assert CSRF.search(khmer_page).group(1) != CSRF.search(english_page).group(1)


def test_every_visitor_of_one_worker_can_send_the_join_form(web):
    base, _server = web
    for number in range(3):
        visitor = Visitor(base, "en")
        page, _headers = visitor.get("/join")
        form = join_form(email=f"applicant{number}@example.org", **{
            "representatives-0-email": f"colleague{number}@example.org"})
        form["csrf_token"] = CSRF.search(page).group(1)

        status, answer = visitor.post("/join", form)

        assert status == 200, answer
        assert "expired" not in answer
        assert re.search(r"check your email|Check your email", answer)


def test_access_log_keeps_no_secret_of_a_link(web):
    base, server = web
    secret = "Zq3x9PbK2mVt7LcW8nYd4R"
    page, _headers = Visitor(base, "en").get(f"/confirm/{secret}")
    assert "link" in page

    server.stop()

    assert "/confirm/*" in server.output
    assert secret not in server.output
