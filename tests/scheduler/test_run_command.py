"""`wg run` as people start it on their own machine: the port they chose, a port already taken."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from tests.mail import free_port
from tests.scheduler.test_commands import WG, _get, wg
from tests.web import join_form


def test_wg_run_on_another_port_writes_links_to_that_port_when_base_url_is_unset(tmp_path):
    port, catcher = free_port(), free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
        "WG_CATCHER_PORT": str(catcher),
    }
    wg(environment, "db", "upgrade")
    server = subprocess.Popen(
        [WG, "run", "--port", str(port)],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                _get(opener, base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        page = _get(opener, base + "/join")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({**join_form(), "csrf_token": token}).encode()
        _get(opener, urllib.request.Request(base + "/join", data=body))
        for _ in range(150):  # the delivery job runs every few seconds
            listing = _get(opener, base + "/dev/mail")
            if "Please confirm" in listing:
                break
            time.sleep(0.1)
        mail_page = _get(opener, base + re.search(r'href="(/dev/mail/[^"]+)"', listing).group(1))
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]

    assert f"{base}/confirm/" in mail_page, output
    assert "127.0.0.1:5000" not in mail_page


def test_a_mail_catcher_port_in_use_is_one_line_not_a_traceback(tmp_path):
    environment = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    wg(environment, "db", "upgrade")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        environment["WG_CATCHER_PORT"] = str(taken.getsockname()[1])
        result = subprocess.run(
            [WG, "run", "--port", str(free_port())],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"wg: the mail catcher cannot listen on 127.0.0.1:{environment['WG_CATCHER_PORT']} "
        "(address already in use); set WG_CATCHER_PORT to a free port"
    ]
    assert "Traceback" not in result.stdout + result.stderr
