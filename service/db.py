"""The database: engine set-up for SQLite and PostgreSQL, sessions, and the UTC-only type."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from flask import Flask, current_app, g, request
from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC: naive datetimes are refused, not guessed.

    SQLite stores no offset, so without this a local time would silently pass as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} refused: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if _is_sqlite(dialect) else value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_sqlite(dialect: object) -> bool:
    return getattr(dialect, "name", "") == "sqlite"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


# What a database that is down, restarting, or locked for too long raises: a calm answer and
# one line in the log, not a traceback (`wg`, the web, the scheduler).
UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
# PostgreSQL: a request waits at most this long for a lock, or for one statement, before it
# gives up with UNAVAILABLE (a person is waiting; a stuck lock must not hold them for minutes).
LOCK_TIMEOUT = "10s"
STATEMENT_TIMEOUT = "120s"


def unavailable_reason(exc: BaseException) -> str:
    """Why the database did not answer, in one line."""
    original = getattr(exc, "orig", None) or exc
    return " ".join(str(original).split())[:300] or type(original).__name__


def make_engine(url: str) -> Engine:
    """An engine with the settings each database needs for several writers at once."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        connect_args={"connect_timeout": 10},
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        dbapi_connection.commit()

    return engine


READ_ONLY = "wg_read_only"


def _make_sqlite_transactional(engine: Engine) -> None:
    """WAL for concurrent readers, a busy timeout, and BEGIN IMMEDIATE for writers.

    pysqlite's own transaction handling begins lazily and deferred, which lets two writers
    both read and then deadlock on upgrade; taking the write lock at BEGIN serialises them.
    Connections marked read-only (GET requests) begin deferred so they never wait on writers.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (the default is 2 MiB): a meeting's invitations to a large
        # membership write into big indexes, and should not read them back from disk.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # every statement is its own transaction
        connection.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")


def dialect_insert(dialect: str) -> Callable[..., Any]:
    """The INSERT of `dialect` (PostgreSQL's or SQLite's), which knows ON CONFLICT."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def insert_ignoring_duplicates(
    session: Session, model: type[Base], unique: tuple[str, ...], values: dict[str, Any]
) -> int:
    """Insert a row unless one with the same `unique` columns exists; 1 when inserted.

    The database settles the race itself (ON CONFLICT DO NOTHING), so two processes that
    decide the same thing at once still store it once and neither fails.
    """
    statement = (
        dialect_insert(session.get_bind().dialect.name)(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(unique))
        .returning(model.__table__.c.id)
    )
    # RETURNING, not rowcount: psycopg reports -1 rows for a skipped insert.
    return 1 if session.execute(statement).first() is not None else 0


class Database:
    """The engine and session factories of one app."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self.sessions.begin() as session:
            yield session


def init_app(app: Flask, url: str) -> Database:
    database = Database(url)
    app.extensions["wg.db"] = database
    app.teardown_request(_close_request_session)
    return database


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def db_session() -> Session:
    """This request's session; GET and HEAD get one that never takes the write lock."""
    if "db" not in g:
        database = get_database()
        factory = database.read_sessions if request.method in SAFE_METHODS else database.sessions
        g.db = factory()
    return g.db


def _close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()  # rolls back whatever a failed request left uncommitted


def get_database(app: Flask | None = None) -> Database:
    return (app or current_app).extensions["wg.db"]


@contextmanager
def session_scope(app: Flask | None = None) -> Iterator[Session]:
    """A transaction for jobs and commands: commit on success, roll back on error."""
    with get_database(app).transaction() as session:
        yield session
