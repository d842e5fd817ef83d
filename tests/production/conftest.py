"""The production topology, as the README tells an operator to run it: `wg web` (gunicorn,
two workers) and one `wg scheduler` as separate processes on PostgreSQL, a real Postfix relay
(STARTTLS, login checked by Dovecot) delivering into Dovecot mailboxes read over IMAP."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import POSTGRES_URL
from tests.mail import free_port
from tests.processes import Server, base_environment, run_wg, wg_server
from tests.production import stack as mail_stack

SECRETARIAT = "secretariat@app.example"  # the service's login, Reply-To and IMAP mailbox
COORDINATOR = "coordinator@app.example"
USERS = {
    SECRETARIAT: "secretariat-pw",
    COORDINATOR: "coordinator-pw",
    **{f"{name}@remote.example": f"{name}-pw" for name in ("alice", "bob", "carol", "dave")},
    "erin@remote.example": "erin-pw",
}


def _unavailable() -> str:
    reason = mail_stack.available() or ("" if POSTGRES_URL else "no PostgreSQL answers")
    if reason and os.environ.get("CI"):
        pytest.fail(f"the production suite cannot run: {reason} (CI is set: an error, not a skip)")
    return reason


@dataclass
class Production:
    """One running installation: its settings, its processes, its mail system."""

    env: dict[str, str]
    base_url: str
    mail: mail_stack.MailStack
    logs: Path
    processes: ExitStack
    database: Engine
    scheduler: Server | None = None
    started: list[Server] = field(default_factory=list)

    def wg(self, *args: str, check: bool = True, **overrides: str) -> CompletedProcess[bytes]:
        result = run_wg({**self.env, **overrides}, *args, cwd=self.logs)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def outbox(self) -> tuple[int, dict]:
        """`wg outbox --json`: its exit status and its report."""
        result = self.wg("outbox", "--json", check=False)
        return result.returncode, json.loads(result.stdout)

    def fault(self) -> str:
        """The open delivery fault's detail, "" when none (read directly: polled often)."""
        with self.database.connect() as connection:
            detail = connection.execute(
                text("SELECT detail FROM delivery_fault WHERE cleared_at IS NULL")
            ).scalar()
        return detail or ""

    def queued(self) -> int:
        with self.database.connect() as connection:
            return connection.execute(
                text("SELECT count(*) FROM outbound_email WHERE status = 'queued'")
            ).scalar_one()

    def start_scheduler(self, **overrides: str) -> Server:
        """(Re)start the one scheduler, with some settings changed (a misconfiguration)."""
        if self.scheduler is not None:
            assert self.scheduler.stop() == 0, self.scheduler.output
        log = self.logs / f"scheduler-{len(self.started)}.log"
        self.scheduler = self.processes.enter_context(
            wg_server({**self.env, **overrides}, "scheduler", log=log)
        )
        self.started.append(self.scheduler)
        return self.scheduler


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    logs = tmp_path_factory.mktemp("production")
    schema = f"wg_prod_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    database_url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    web_port = free_port()
    base_url = f"http://127.0.0.1:{web_port}"

    def settings_for(mail: mail_stack.MailStack) -> dict[str, str]:
        return {
            "WG_DATABASE_URL": database_url,
            "WG_SECRET_KEY": "production-test-secret",
            "WG_INSTANCE_PATH": str(logs / "instance"),
            "WG_BASE_URL": base_url,
            "WG_SMTP_HOST": "127.0.0.1",
            "WG_SMTP_PORT": str(mail.submission),
            "WG_SMTP_SECURITY": "starttls",
            "WG_SMTP_USERNAME": SECRETARIAT,
            "WG_SMTP_PASSWORD": USERS[SECRETARIAT],
            "WG_SMTP_CA_FILE": mail.ca_file,
            "WG_SMTP_HELO": "wg.app.example",
            "WG_MAIL_FROM": f"Working Group <{SECRETARIAT}>",
            "WG_REPLY_TO": SECRETARIAT,
            "WG_COORDINATOR_EMAILS": COORDINATOR,
            "WG_IMAP_HOST": "127.0.0.1",
            "WG_IMAP_PORT": str(mail.imap),
            "WG_IMAP_SECURITY": "starttls",
            "WG_IMAP_CA_FILE": mail.ca_file,
            "WG_IMAP_USERNAME": SECRETARIAT,
            "WG_IMAP_PASSWORD": USERS[SECRETARIAT],
            # Any hour of the day, so the suite runs whenever CI does.
            "WG_SEND_WINDOW": "00:00-23:59",
            "WG_DIGEST_TIME": "23:59",
        }

    mail = mail_stack.start(USERS, settings_for)
    with ExitStack() as processes:
        processes.callback(mail_stack.stop, mail)
        processes.callback(admin.dispose)
        processes.callback(_drop_schema, admin, schema)
        env = base_environment(**settings_for(mail))
        database = create_engine(database_url, poolclass=NullPool)
        processes.callback(database.dispose)
        production = Production(env, base_url, mail, logs, processes, database)
        production.wg("db", "upgrade")
        processes.enter_context(
            wg_server(
                env,
                "web", "--port", str(web_port), "--workers", "2",
                log=logs / "web.log",
                ready_url=f"{base_url}/healthz",
            )
        )
        production.start_scheduler()
        yield production


def _drop_schema(admin, schema: str) -> None:  # type: ignore[no-untyped-def]
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
