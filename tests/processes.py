"""The `wg` command as a real process: run one command, or start a server and stop it by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WG = str(Path(sys.executable).parent / "wg")


def base_environment(**settings: str) -> dict[str, str]:
    """A clean environment for `wg`: PATH and the given WG_* settings, nothing inherited."""
    return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **settings}


def run_wg(
    environment: dict[str, str], *args: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run one `wg` command to its end; the caller checks the status."""
    return subprocess.run(
        [WG, *args],
        env=environment,
        input=stdin,
        capture_output=True,
        timeout=120,
        cwd=cwd or Path(environment.get("WG_INSTANCE_PATH", tempfile.gettempdir())).parent,
    )


def wait_until(condition: Callable[[], object], *, timeout: float = 20, every: float = 0.1) -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not true after {timeout} s: {condition}")
        time.sleep(every)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if not with 200
    except OSError:
        return False


class Server:
    """A started `wg` process; its output is collected in a file to read after it stops."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def wg_server(
    environment: dict[str, str], *args: str, log: Path, ready_url: str | None = None
) -> Iterator[Server]:
    """Start `wg ARGS` (e.g. web, scheduler), wait until `ready_url` answers, stop it after."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [WG, *args], env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=log.parent
        )
    server = Server(process, log)
    try:
        if ready_url:
            wait_until(lambda: answers(ready_url) or process.poll() is not None, timeout=30)
            assert process.poll() is None, f"wg {' '.join(args)} exited:\n{server.output}"
        yield server
    finally:
        server.stop()
