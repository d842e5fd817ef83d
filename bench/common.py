"""What every benchmark needs: smtp-sink, databases, an app, members, a clock, timing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, insert, text

PG_URL = os.environ.get("WG_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# 09:00 in Phnom Penh, inside the default sending window.
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")

KHMER_GIVEN = ["សុខ", "ដារា", "ចាន់ធី", "វណ្ណា", "សុភា", "រតនា", "បុប្ផា", "ពិសី", "សុវណ្ណ", "ច័ន្ទ"]
KHMER_FAMILY = ["ហេង", "ឈាង", "លី", "គឹម", "សំ", "ម៉ៅ", "ឈិន", "ព្រំ"]
ENGLISH_GIVEN = ["Dara", "Sophea", "Channthy", "Vannak", "Rathana", "Bopha", "Pisey", "Sovann"]
ENGLISH_FAMILY = ["Heng", "Chhay", "Ly", "Kim", "Sam", "Mao", "Chhin", "Prum", "Sok", "Keo"]


def scaled(full: int) -> int:
    """`full` or, with BENCH_QUICK=1, a tenth of it."""
    return max(1, full // 10) if QUICK else full


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


# --- tools from Debian ---------------------------------------------------------------------



def ensure_tool(command: str, package: str) -> str:
    """The path of `command` (from Debian's `package`); `bench/setup` installs them all."""
    found = shutil.which(command) or shutil.which(command, path="/usr/sbin:/usr/bin")
    if not found:
        raise SystemExit(f"{command} is missing (Debian package {package}): run bench/setup")
    return found


@contextmanager
def smtp_sink() -> Iterator[int]:
    """Postfix's smtp-sink on a free loopback port: accepts and discards every message."""
    binary = ensure_tool("smtp-sink", "postfix")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *user, f"127.0.0.1:{port}", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- databases and the app -----------------------------------------------------------------


@dataclass
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[Database]:
    """An empty, migrated database: a new SQLite file, or a new PostgreSQL schema (dropped
    afterwards)."""
    from service.db import make_engine
    from service.migrations import upgrade

    if kind == "sqlite":
        path = workdir / f"wg-{uuid.uuid4().hex[:8]}.sqlite3"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        try:
            yield Database(kind, url)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    schema = f"wg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield Database(kind, url)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def app_config(database_url: str, smtp_port: int, instance: Path, **extra: str) -> dict[str, str]:
    return {
        "WG_DATABASE_URL": database_url,
        "WG_INSTANCE_PATH": str(instance),
        "WG_SECRET_KEY": "bench-secret-key",
        "WG_BASE_URL": "https://wg.example.org",
        "WG_SMTP_HOST": "127.0.0.1",
        "WG_SMTP_PORT": str(smtp_port),
        "WG_MAIL_FROM": "Working Group <noreply@wg.example.org>",
        "WG_REPLY_TO": "Secretariat <secretariat@wg.example.org>",
        "WG_ORGANIZER_EMAIL": "secretariat@wg.example.org",
        "WG_COORDINATOR_EMAILS": "coordinator@wg.example.org",
        "WG_JOIN_RATE_LIMIT": "1000000 per hour",
        **extra,
    }


def make_app(database: Database, smtp_port: int, workdir: Path, **extra: str) -> Flask:
    from service import create_app
    from service.clock import set_clock

    app = create_app(app_config(database.url, smtp_port, workdir / "instance", **extra))
    set_clock(app, lambda: NOW)
    return app


def add_members(app: Flask, count: int, *, per_organisation: int = 10) -> None:
    """`count` active members, half reading Khmer first, in one bulk insert per table."""
    from service.db import get_database
    from service.models import (
        Contact,
        ContactStatus,
        Language,
        Organisation,
        OrganisationKind,
        OrganisationStatus,
    )

    organisations = -(-count // per_organisation)
    engine = get_database(app).engine
    with engine.begin() as connection:
        first = connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM organisation")).scalar()
        connection.execute(
            insert(Organisation),
            [
                dict(
                    public_id=uuid.uuid4().hex,
                    name=f"Member Organisation {n}",
                    kind=OrganisationKind.ORGANISATION,
                    website="",
                    represented_in_cambodia=True,
                    cambodia_location="Phnom Penh",
                    work_summary="",
                    status=OrganisationStatus.ACTIVE,
                    created_at=NOW,
                )
                for n in range(organisations)
            ],
        )
        rows = []
        for n in range(count):
            khmer = n % 2 == 0
            if khmer:
                name = f"{KHMER_GIVEN[n % 10]} {KHMER_FAMILY[(n // 10) % 8]}"
            else:
                name = f"{ENGLISH_GIVEN[n % 8]} {ENGLISH_FAMILY[(n // 8) % 10]}"
            rows.append(
                dict(
                    public_id=uuid.uuid4().hex,
                    organisation_id=first + 1 + n // per_organisation,
                    name=name,
                    email=f"member{n}@org{n // per_organisation}.example.org",
                    phone="",
                    role="Representative",
                    language=Language.KM if khmer else Language.EN,
                    status=ContactStatus.ACTIVE,
                    wants_announcements=True,
                    created_at=NOW,
                    bounce_score=0.0,
                    last_bounce_at=None,
                )
            )
        for start in range(0, len(rows), 20_000):
            connection.execute(insert(Contact), rows[start : start + 20_000])


SUBJECT_EN = "Verdict to be announced on 22 September: what it means for the reparations"
SUBJECT_KM = "សេចក្ដីប្រកាស៖ សាលក្រមនឹងត្រូវប្រកាសនៅថ្ងៃទី ២២ ខែកញ្ញា"
BODY_EN = """Dear members,

The court will announce its verdict on **22 September**. The secretariat will follow the
hearing and share a summary the same day.

- Survivors who wish to attend can ask the secretariat for transport support.
- Member organisations are invited to a short briefing the week before.
- Press requests go to the coordinator, not to survivors or their families.

The working group thanks every member organisation for the support given to survivors
during these long years of proceedings. Questions are welcome: reply to this email.
"""
BODY_KM = """ជូនចំពោះសមាជិក

តុលាការនឹងប្រកាសសាលក្រមនៅថ្ងៃទី ២២ ខែកញ្ញា។ លេខាធិការដ្ឋាននឹងតាមដានសវនាការ ហើយចែករំលែកសេចក្ដីសង្ខេបនៅថ្ងៃដដែល។

- ជនរងគ្រោះដែលចង់ចូលរួម អាចស្នើសុំការគាំទ្រការធ្វើដំណើរពីលេខាធិការដ្ឋាន។
- អង្គការសមាជិកត្រូវបានអញ្ជើញឱ្យចូលរួមកិច្ចប្រជុំពន្យល់ខ្លីមួយ មុនមួយសប្ដាហ៍។

ក្រុមការងារសូមអរគុណអង្គការសមាជិកទាំងអស់ចំពោះការគាំទ្រជនរងគ្រោះ។ សូមឆ្លើយតបអ៊ីមែលនេះ ប្រសិនបើមានសំណួរ។
"""


def announce(app: Flask) -> int:
    """The real announcement feature: every active member gets one message in the outbox."""
    from service.db import session_scope
    from service.notices.announcements import announce as queue_announcement

    with app.app_context(), session_scope(app) as db:
        report = queue_announcement(
            db,
            subject_en=SUBJECT_EN,
            body_en=BODY_EN,
            subject_km=SUBJECT_KM,
            body_km=BODY_KM,
            now=NOW,
        )
    return sum(report.queued.values())


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="wg-bench-") as path:
        yield Path(path)
