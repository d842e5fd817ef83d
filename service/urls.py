"""Absolute links for emails, built from WG_BASE_URL rather than from a request."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from service.config import settings


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of `endpoint`, valid outside any request (jobs, the CLI)."""
    base = urlsplit(settings().base_url)
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
