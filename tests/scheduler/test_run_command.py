"""`wg run` as people start it on their own machine: the port they chose, a port already taken."""

from __future__ import annotations

import os
import socket
import subprocess

from tests.mail import free_port
from tests.scheduler.test_commands import WG, join_through_wg_run, wg


def test_wg_run_on_another_port_writes_links_to_that_port_when_base_url_is_unset(tmp_path):
    run = join_through_wg_run(tmp_path, free_port())

    assert f"{run.base}/confirm/" in run.mail_page, run.output
    assert "127.0.0.1:5000" not in run.mail_page


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
