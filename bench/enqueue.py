"""Figure 2: queuing a send to many members against a bare executemany INSERT of its rows."""

from __future__ import annotations

import uuid
from pathlib import Path

from bench.common import NOW, add_members, announce, fresh_database, log, make_app, timed


def recipients(count: int, send: str) -> list[dict]:
    """What `announce` hands to the outbox for `count` members: address, name, language,
    dedupe key and the personal unsubscribe links."""
    rows = []
    for n in range(count):
        token = uuid.uuid4().hex[:22]
        rows.append(
            {
                "to": f"member{n}@org{n // 10}.example.org",
                "to_name": f"Member {n}",
                "lang": "km" if n % 2 == 0 else "en",
                "dedupe_key": f"announce:{send}:{n}",
                "context": {
                    "list_unsubscribe": {
                        "url": f"https://wg.example.org/unsubscribe/{token}",
                        "mailto": "mailto:secretariat@wg.example.org?subject=unsubscribe%20"
                        + token,
                    }
                },
            }
        )
    return rows


def bare_insert(app, rows: list[dict]) -> float:  # type: ignore[no-untyped-def]
    """The floor: the same rows, prepared in advance, by the driver's own executemany."""
    import json

    from service.db import get_database

    engine = get_database(app).engine
    sqlite = engine.dialect.name == "sqlite"
    moment = NOW.replace(tzinfo=None) if sqlite else NOW
    mark = "?" if sqlite else "%s"
    columns = (
        "dedupe_key, recipient, recipient_name, template, language, context, list_mail, "
        "topic, message_id, status, attempts, not_before, lease_owner, last_error, created_at"
    )
    statement = f"INSERT INTO outbound_email ({columns}) VALUES ({', '.join([mark] * 15)})"
    values = [
        (
            "bare:" + r["dedupe_key"],
            r["to"],
            r["to_name"],
            "announcement",
            r["lang"],
            json.dumps(r["context"]),
            True,
            "bare",
            f"<bare.{n}.{uuid.uuid4().hex}@wg.example.org>",
            "queued",
            0,
            moment,
            "",
            "",
            moment,
        )
        for n, r in enumerate(rows)
    ]
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        elapsed, _ = timed(lambda: (cursor.executemany(statement, values), connection.commit()))
        cursor.execute("DELETE FROM outbound_email WHERE topic = 'bare'")
        connection.commit()
    finally:
        connection.close()
    return elapsed


def enqueue_rows(app, rows: list[dict]) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    """outbox.enqueue_many when it exists, else a loop of outbox.enqueue; one transaction."""
    from bench.common import BODY_EN, BODY_KM, SUBJECT_EN, SUBJECT_KM
    from service import outbox
    from service.db import session_scope

    shared = {
        "en": {"subject": SUBJECT_EN, "body_text": BODY_EN, "body_html": f"<p>{BODY_EN}</p>"},
        "km": {"subject": SUBJECT_KM, "body_text": BODY_KM, "body_html": f"<p>{BODY_KM}</p>"},
    }

    def many() -> None:
        with app.app_context(), session_scope(app) as db:
            outbox.enqueue_many(db, "announcement", rows, shared=shared, now=NOW, topic="bench")

    def loop() -> None:
        with app.app_context(), session_scope(app) as db:
            for r in rows:
                outbox.enqueue(
                    db,
                    "announcement",
                    to=r["to"],
                    to_name=r["to_name"],
                    lang=r["lang"],
                    dedupe_key=r["dedupe_key"],
                    context={**shared[r["lang"]], **r["context"]},
                    now=NOW,
                    list_mail=True,
                    topic="bench",
                )

    if hasattr(outbox, "enqueue_many"):
        return timed(many)[0], "outbox.enqueue_many"
    return timed(loop)[0], "a loop of outbox.enqueue (enqueue_many does not exist yet)"


def run(kind: str, members: int, port: int, workdir: Path) -> dict:
    with fresh_database(kind, workdir) as database:
        app = make_app(database, port, workdir)
        rows = recipients(members, "bench")
        baseline = bare_insert(app, rows)
        elapsed, how = enqueue_rows(app, rows)
        # The whole feature, for the record: members query, tokens, shared context, rows.
        add_members(app, members)
        announce_time, queued = timed(lambda: announce(app))
        from service.db import get_database

        get_database(app).engine.dispose()
    log(
        f"enqueue {kind}: {members} rows in {elapsed:.2f}s by {how}; bare executemany "
        f"{baseline:.2f}s; the whole `announce` {announce_time:.2f}s for {queued}"
    )
    return {"time": elapsed, "baseline": baseline, "how": how, "announce": announce_time}
