"""/healthz: 200 while the database answers, 503 when it does not."""

from __future__ import annotations

from service import create_app


def test_health_is_ok_when_the_database_answers(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {"status": "ok", "database": "ok"}


def test_health_is_503_when_the_database_is_unreachable(tmp_path):
    app = create_app(
        {
            "WG_INSTANCE_PATH": str(tmp_path),
            "WG_SECRET_KEY": "k",
            "WG_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1",
        }
    )
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json["database"] == "unreachable"
