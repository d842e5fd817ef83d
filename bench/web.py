"""Figure 5: pages under load: gunicorn with 2 workers (`wg web`), wrk with 32 connections."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    add_members,
    app_config,
    ensure_tool,
    free_port,
    fresh_database,
    log,
    make_app,
    wait_for_port,
)

CONNECTIONS = 32


def prepare(app) -> str:  # type: ignore[no-untyped-def]
    """A meeting a month from now with one invitee; the raw RSVP token of their link."""
    from sqlalchemy import insert, select

    from service import tokens
    from service.db import session_scope
    from service.meetings.operations import MeetingDetails, add_meeting, ends_at
    from service.models import Contact, Invitation, Rsvp, TokenPurpose

    now = datetime.now(UTC)
    with app.app_context(), session_scope(app) as db:
        meeting = add_meeting(
            db,
            MeetingDetails(
                title_en="Monthly meeting",
                title_km="កិច្ចប្រជុំប្រចាំខែ",
                starts_at=now + timedelta(days=30),
                location="Documentation centre",
                agenda_en="1. The verdict\n2. Reparations",
            ),
            now=now,
        )
        contact_id = db.scalar(select(Contact.id).order_by(Contact.id).limit(1))
        invitation_id = db.execute(
            insert(Invitation).returning(Invitation.id),
            dict(
                meeting_id=meeting.id,
                contact_id=contact_id,
                answer=Rsvp.NONE,
                invited_at=now,
                note="",
                substitute_name="",
                substitute_email="",
                invitation_message_id="",
                followup_stage=0,
                reminded_sequence=-1,
            ),
        ).scalar_one()
        return tokens.issue(
            db, TokenPurpose.RSVP, invitation_id, now=now, expires_at=ends_at(meeting)
        )


SESSIONS = 64


def _visit(base: str, path: str) -> tuple[str, str]:
    """A new visitor's GET of the page: their session cookie and the form's CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + path).read().decode("utf-8")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    if token is None:
        raise RuntimeError("no CSRF token on the RSVP page")
    return "; ".join(f"{c.name}={c.value}" for c in jar), token.group(1)


def post_script(base: str, path: str, workdir: Path) -> Path:
    """A wrk script that posts the RSVP form as many visitors would: each request takes the
    next of SESSIONS sessions, each with the CSRF token a real GET gave it (served by
    whichever worker took that GET), so no worker sees only the session it issued."""
    visitors = [_visit(base, path) for _ in range(SESSIONS)]
    if len({token for _, token in visitors}) != SESSIONS:
        raise RuntimeError("two visitors were given the same CSRF token")
    no_redirect = urllib.request.build_opener(_NoRedirect)
    for cookie, token in visitors[:4]:  # the form is accepted as the load generator sends it
        request = urllib.request.Request(
            base + path,
            data=f"csrf_token={token}&answer=yes".encode(),
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            status = no_redirect.open(request).status
        except urllib.error.HTTPError as error:
            status = error.code
        if status != 302:
            raise RuntimeError(f"the prepared RSVP POST answered {status}, not 302")
    entries = ",\n".join(f'  {{"{cookie}", "{token}"}}' for cookie, token in visitors)
    script = workdir / "rsvp_post.lua"
    script.write_text(
        f"local visitors = {{\n{entries}\n}}\n"
        "local next_one = 0\n"
        "request = function()\n"
        "  next_one = next_one % #visitors + 1\n"
        "  local cookie, token = visitors[next_one][1], visitors[next_one][2]\n"
        '  local headers = {["Cookie"] = cookie,\n'
        '    ["Content-Type"] = "application/x-www-form-urlencoded"}\n'
        '  local body = "csrf_token=" .. token .. "&answer=yes&note=&substitute_name="'
        ' .. "&substitute_email="\n'
        '  return wrk.format("POST", nil, headers, body)\n'
        "end\n"
    )
    return script


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def wrk(url: str, seconds: int, script: Path | None = None) -> dict:
    binary = ensure_tool("wrk", "wrk")
    command = [binary, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        errors += int(bad.group(1))
    return {"rate": rate, "p99_ms": p99_ms, "requests": total, "errors": errors}


def run(port: int, workdir: Path, seconds: int) -> dict:
    ensure_tool("wrk", "wrk")
    with fresh_database("sqlite", workdir) as database:
        app = make_app(database, port, workdir)
        add_members(app, 1000)
        token = prepare(app)
        from service.db import get_database

        get_database(app).engine.dispose()
        web_port = free_port()
        env = {
            **os.environ,
            **app_config(database.url, port, workdir / "instance"),
            "WG_ENV": "development",
        }
        wg = str(Path(sys.executable).parent / "wg")
        server = subprocess.Popen(
            [wg, "web", "--workers", "2", "--host", "127.0.0.1", "--port", str(web_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(web_port, timeout=30)
            base = f"http://127.0.0.1:{web_port}"
            rsvp = f"/rsvp/{token}"
            script = post_script(base, rsvp, workdir)
            wrk(base + "/healthz", 1)  # warm both workers up
            results = {
                "healthz": wrk(base + "/healthz", seconds),
                "join": wrk(base + "/join", seconds),
                "rsvp_get": wrk(base + rsvp, seconds),
                "rsvp_post": wrk(base + rsvp, seconds, script),
            }
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                server.kill()
            time.sleep(0.2)
    for name, result in results.items():
        log(
            f"web {name}: {result['rate']:,.0f} requests/s, p99 {result['p99_ms']:.1f} ms, "
            f"{result['errors']} errors of {result['requests']}"
        )
    return results
