"""Faults of the machine: the database away or locked, several workers, an MTA's pipe."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from scheduler.runner import DatabaseWatch
from service import create_app
from service.db import get_database
from tests.conftest import POSTGRES_URL, app_config
from tests.mail import free_port
from tests.processes import base_environment, run_wg
from tests.web import CSRF, join_form

NOWHERE = {
    "sqlite": "sqlite:////nonexistent/folder/wg.sqlite3",
    "postgresql": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
}


@pytest.fixture(params=sorted(NOWHERE))
def app_without_database(request, smtp_server, tmp_path):
    app = create_app(app_config(NOWHERE[request.param], smtp_server.port, tmp_path / "instance"))
    app.config["TESTING"] = True
    return app


def test_a_form_sent_while_the_database_is_away_comes_back_ready_to_send_again(
    app_without_database,
):
    client = app_without_database.test_client()
    token = CSRF.search(client.get("/join").get_data(as_text=True)).group(1)
    form = {**join_form(organisation_name="Kampot Women & Memory"), "csrf_token": token}

    answer = client.post("/join?lang=en", data=form)

    page = answer.get_data(as_text=True)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert "Please try again in a minute" in page
    assert 'action="/join?lang=en"' in page
    assert 'name="organisation_name" value="Kampot Women &amp; Memory"' in page
    assert f'name="csrf_token" value="{token}"' in page


def test_a_page_asked_for_while_the_database_is_away_is_a_calm_503(app_without_database):
    answer = app_without_database.test_client().get("/rsvp/Zq3x9PbK2mVt7LcW8nYd4R")

    assert answer.status_code == 503
    assert "reload it in a minute" in answer.get_data(as_text=True)


def test_wg_tick_with_the_database_away_says_so_in_one_line(tmp_path):
    environment = base_environment(
        WG_INSTANCE_PATH=str(tmp_path / "instance"),
        WG_DATABASE_URL=NOWHERE["postgresql"],
        WG_SECRET_KEY="test",
    )

    result = run_wg(environment, "tick")

    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wg: the database is unavailable: ")


def test_the_scheduler_says_once_a_minute_that_the_database_is_away(caplog, monkeypatch):
    from sqlalchemy.exc import OperationalError

    moments = iter([0.0, 5.0, 10.0, 61.0, 70.0, 75.0])
    monkeypatch.setattr("scheduler.runner.time.monotonic", lambda: next(moments))
    watch = DatabaseWatch()

    def failing() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with caplog.at_level(logging.INFO, logger="scheduler.runner"):
        for _run in range(4):  # at 0, 5, 10 and 61 seconds
            watch.run(failing)
        watch.run(lambda: None)  # at 70 s it answers again

    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "the database is unavailable: connection refused",
        "the database is unavailable: connection refused",
        "the database is back after 70 s",
    ]


def test_workers_sharing_a_database_share_the_rate_limit(database_url, smtp_server, tmp_path):
    workers = [
        create_app(
            app_config(
                database_url,
                smtp_server.port,
                tmp_path / f"worker{n}",
                WG_JOIN_RATE_LIMIT="3 per hour",
            )
        )
        for n in range(2)
    ]
    from service.migrations import upgrade

    upgrade(get_database(workers[0]).engine)
    clients = [worker.test_client() for worker in workers]

    statuses = [clients[n % 2].post("/join", data={}).status_code for n in range(5)]

    assert statuses == [400, 400, 400, 429, 429]
    for worker in workers:
        with get_database(worker).engine.begin() as connection:
            connection.execute(text("DELETE FROM rate_limit_counter"))
        get_database(worker).engine.dispose()


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_post_waiting_on_a_lock_gives_up_with_a_calm_503_on_postgresql(app, client):
    token = CSRF.search(client.get("/join").get_data(as_text=True)).group(1)
    holder = create_engine(str(get_database(app).engine.url.render_as_string(False)))
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        with holder.begin() as connection:
            connection.execute(text("LOCK TABLE join_request IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=hold_the_table)
    thread.start()
    try:
        locked.wait(10)
        answer = client.post("/join", data={**join_form(), "csrf_token": token})
    finally:
        release.set()
        thread.join()
        holder.dispose()

    assert answer.status_code == 503
    assert 'name="organisation_name"' in answer.get_data(as_text=True)


# --- `wg inbound read` in an MTA's pipe ---------------------------------------------------------

UNRELATED = (
    b"From: someone@example.org\r\nTo: secretariat@wg.test\r\nSubject: hello\r\n"
    b"Message-ID: <hello@example.org>\r\n\r\nHello.\r\n"
)


def pipe(tmp_path: Path, *args: str, **settings: str):  # type: ignore[no-untyped-def]
    """`wg ARGS inbound read` as Postfix runs it: no environment but PATH."""
    return run_wg(
        base_environment(**settings), *args, "inbound", "read", stdin=UNRELATED, cwd=tmp_path
    )


def test_the_pipe_reads_its_settings_from_an_env_file(tmp_path, database_url):
    env_file = tmp_path / "wg.env"
    env_file.write_text(
        f"WG_DATABASE_URL={database_url}\nWG_SECRET_KEY=test\n"
        f"WG_INSTANCE_PATH={tmp_path / 'instance'}\n"
    )
    create_app({"WG_DATABASE_URL": database_url, "WG_INSTANCE_PATH": str(tmp_path)})

    by_option = pipe(tmp_path, "--env-file", str(env_file))
    by_setting = pipe(tmp_path, WG_ENV_FILE=str(env_file))

    assert by_option.returncode == 0, by_option.stderr
    assert b"unrelated" in by_option.stdout
    assert by_setting.returncode == 0 and b"already processed" in by_setting.stdout


@pytest.mark.parametrize(
    ("case", "arguments", "settings"),
    [
        ("missing env file option", ("--env-file", "/nonexistent/wg.env"), {}),
        ("missing WG_ENV_FILE", (), {"WG_ENV_FILE": "/nonexistent/wg.env"}),
        ("a bad setting", (), {"WG_SMTP_PORT": "x"}),
        ("the database away", (), {"WG_DATABASE_URL": NOWHERE["postgresql"]}),
    ],
)
def test_the_pipe_asks_the_mta_to_try_again_in_one_line_whatever_fails(
    tmp_path, case, arguments, settings
):
    settings = {"WG_INSTANCE_PATH": str(tmp_path / "instance"), **settings}

    result = pipe(tmp_path, *arguments, **settings)

    assert result.returncode == 75, case
    assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr
    assert b"Traceback" not in result.stderr + result.stdout
