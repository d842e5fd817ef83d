"""The current time, in one place, so tests and `wg tick --now` can set it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, current_app


def system_now() -> datetime:
    return datetime.now(UTC)


def now(app: Flask | None = None) -> datetime:
    """The app's notion of now: the system clock unless a test or `--now` replaced it."""
    source: Callable[[], datetime] = (app or current_app).extensions.get("wg.clock", system_now)
    return source()


def set_clock(app: Flask, source: Callable[[], datetime]) -> None:
    app.extensions["wg.clock"] = source
