"""Settings: read from `WG_*` environment variables (and `.env`), validated once at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import time
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app

from emails.addresses import split_mailbox
from emails.compose import group_name_in
from emails.transport import Security, SmtpSettings

# The embedded mail catcher of `wg run` listens here when WG_SMTP_HOST is empty.
DEFAULT_CATCHER_PORT = 8025
IMAP_STARTTLS_PORT = 143
SECRET_KEY_FILE = "secret_key"
# WG_RATELIMIT_STORAGE's default: counters in the service's own database, shared by every
# web worker on every host without anything more to run.
DATABASE_RATELIMIT_STORAGE = "database"


class SettingError(ValueError):
    """A setting is missing or wrong; the message is one line that names it."""


def _text(value: str) -> str:
    return value.strip()


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}..{high}")
        return number

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _email(value: str) -> str:
    return validate_email(
        value.strip(), check_deliverability=False, test_environment=True
    ).normalized


def _mailbox(value: str) -> str:
    """A mailbox as it may stand in From: `Name <addr>` or a bare address."""
    name, address = split_mailbox(value)
    if "\r" in value or "\n" in value:
        raise ValueError("contains a line break")
    try:
        address = validate_email(
            address, check_deliverability=False, test_environment=True
        ).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return f"{name} <{address}>" if name else address


def _emails(value: str) -> tuple[str, ...]:
    return tuple(_email(part) for part in value.split(",") if part.strip())


def _url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value.strip().rstrip("/")


def _readable_file(value: str) -> str:
    path = Path(value.strip())
    if not path.is_file():
        raise ValueError(f"{value!r} is not a file")
    try:
        path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{value!r} cannot be read: {exc.strerror}") from None
    return str(path)


def _dkim_key(value: str) -> str:
    from dkim.crypto import UnparsableKeyError, parse_pem_private_key

    path = _readable_file(value)
    try:
        parse_pem_private_key(Path(path).read_bytes())
    except (UnparsableKeyError, ValueError):
        raise ValueError(f"{value!r} is not an RSA private key in PEM") from None
    return path


def _hostname(value: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() or not c.isascii() for c in value):
        raise ValueError(f"{value!r} is not a host name")
    return value


def _ratelimit_storage(value: str) -> str:
    value = value.strip()
    if value != DATABASE_RATELIMIT_STORAGE and "://" not in value:
        raise ValueError(f"{value!r} is neither 'database' nor a storage URL such as redis://")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone") from None
    return value.strip()


def _clock(value: str) -> str:
    try:
        return f"{time.fromisoformat(value.strip()):%H:%M}"
    except ValueError:
        raise ValueError(f"{value!r} is not a time such as 07:30") from None


def _window(value: str) -> str:
    """ "HH:MM-HH:MM" in the group's time zone, the start before the end."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"{value!r} is not a window such as 08:00-12:00") from None
    if not start < end:
        raise ValueError(f"{value!r} ends before it starts")
    return f"{start:%H:%M}-{end:%H:%M}"


def _database_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("sqlite", "postgresql")):
        raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
    if value.startswith("postgresql://") or value.startswith("postgres://"):
        # psycopg 3 is the driver installed; spare the user the driver suffix.
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


@dataclass(frozen=True)
class Settings:
    """Every `WG_*` setting, parsed. Empty strings mean "not set"."""

    env: str = "development"
    secret_key: str = ""
    database_url: str = ""
    base_url: str = "http://127.0.0.1:5000"
    timezone: str = "Asia/Phnom_Penh"
    group_name: str = "Working Group"
    group_name_km: str = "ក្រុមការងារ"
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "none"
    smtp_connections: int = 1
    senders: int = 1
    smtp_rate_per_minute: int = 0
    smtp_timeout: int = 30
    smtp_ca_file: str = ""
    smtp_helo: str = ""
    catcher_port: int = DEFAULT_CATCHER_PORT
    mail_from: str = ""
    reply_to: str = ""
    bounce_address: str = ""
    organizer_email: str = ""
    coordinator_emails: tuple[str, ...] = ()
    coordinator_language: str = "en"
    imap_host: str = ""
    imap_port: int = 993
    imap_username: str = ""
    imap_password: str = ""
    imap_folder: str = "INBOX"
    imap_security: str = ""
    imap_ca_file: str = ""
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_key_file: str = ""
    ratelimit_storage: str = DATABASE_RATELIMIT_STORAGE
    join_rate_limit: str = "10 per hour"
    confirm_ttl_hours: int = 72
    trusted_proxies: int = 0
    send_window: str = "08:00-12:00"
    digest_time: str = "07:30"
    digest_weekday: str = "monday"
    meeting_horizon_days: int = 60
    console_session_hours: int = 12

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def window(self) -> tuple[time, time]:
        start, end = self.send_window.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)

    @property
    def digest_clock(self) -> time:
        return time.fromisoformat(self.digest_time)

    def group_name_for(self, lang: str) -> str:
        return group_name_in(lang, self.group_name, self.group_name_km)

    @property
    def mail_domain(self) -> str:
        return split_mailbox(self.mail_from)[1].rpartition("@")[2]

    def smtp(self) -> SmtpSettings:
        """Where mail goes: the configured relay, or the embedded catcher of `wg run`."""
        if not self.smtp_host:
            return SmtpSettings(host="127.0.0.1", port=self.catcher_port, timeout=self.smtp_timeout)
        security = Security(self.smtp_security)
        default_port = {Security.NONE: 25, Security.STARTTLS: 587, Security.SSL: 465}[security]
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port or default_port,
            security=security,
            username=self.smtp_username,
            password=self.smtp_password,
            timeout=self.smtp_timeout,
            connections=self.smtp_connections,
            rate_per_minute=self.smtp_rate_per_minute,
            local_hostname=self.smtp_helo or None,
            cafile=self.smtp_ca_file or None,
        )

    @property
    def return_path_base(self) -> str:
        """The mailbox whose subaddresses carry each message's envelope sender (VERP)."""
        return self.bounce_address or split_mailbox(self.reply_to)[1]


PARSERS: dict[str, Callable[[str], object]] = {
    "env": _choice("development", "production"),
    "secret_key": _text,
    "database_url": _database_url,
    "base_url": _url,
    "timezone": _zone,
    "group_name": _text,
    "group_name_km": _text,
    "smtp_host": _text,
    "smtp_port": _int(1, 65535),
    "smtp_username": _text,
    "smtp_password": str,
    "smtp_security": _choice("none", "starttls", "ssl"),
    "smtp_connections": _int(1, 32),
    "senders": _int(1, 16),
    "smtp_rate_per_minute": _int(0, 1_000_000),
    "smtp_timeout": _int(1, 600),
    "smtp_ca_file": _readable_file,
    "smtp_helo": _hostname,
    "catcher_port": _int(1, 65535),
    "mail_from": _mailbox,
    "reply_to": _mailbox,
    "bounce_address": _email,
    "organizer_email": _email,
    "coordinator_emails": _emails,
    "coordinator_language": _choice("en", "km"),
    "imap_host": _text,
    "imap_port": _int(1, 65535),
    "imap_username": _text,
    "imap_password": str,
    "imap_folder": _text,
    "imap_security": _choice("ssl", "starttls", "none"),
    "imap_ca_file": _readable_file,
    "dkim_selector": _hostname,
    "dkim_domain": _hostname,
    "dkim_key_file": _dkim_key,
    "ratelimit_storage": _ratelimit_storage,
    "join_rate_limit": _text,
    "confirm_ttl_hours": _int(1, 24 * 30),
    "trusted_proxies": _int(0, 5),
    "send_window": _window,
    "digest_time": _clock,
    "digest_weekday": _choice(
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ),
    "meeting_horizon_days": _int(1, 400),
    "console_session_hours": _int(1, 24 * 7),
}


def load_settings(environ: Mapping[str, str | None], instance_path: Path) -> Settings:
    """Parse `WG_*` values; raise SettingError with one line naming the first bad one."""
    values: dict[str, object] = {}
    for field in fields(Settings):
        raw = environ.get("WG_" + field.name.upper())
        if raw is None or raw.strip() == "":
            continue
        try:
            values[field.name] = PARSERS[field.name](raw)
        except (ValueError, EmailNotValidError) as exc:
            raise SettingError(f"WG_{field.name.upper()}: {exc}") from None
    settings = Settings(**values)  # type: ignore[arg-type]
    return _complete(settings, instance_path)


def _complete(settings: Settings, instance_path: Path) -> Settings:
    """Fill the defaults that depend on other settings, and refuse unsafe production set-ups."""
    if settings.production:
        _refuse_an_unsafe_production(settings)
    changes: dict[str, object] = {}
    dkim = [settings.dkim_selector, settings.dkim_domain, settings.dkim_key_file]
    if any(dkim) and not all(dkim):
        raise SettingError(
            "WG_DKIM_SELECTOR: DKIM signing needs WG_DKIM_SELECTOR, WG_DKIM_DOMAIN and "
            "WG_DKIM_KEY_FILE together"
        )
    if not settings.imap_security:
        imap_starttls = settings.imap_port == IMAP_STARTTLS_PORT
        changes["imap_security"] = "starttls" if imap_starttls else "ssl"
    if not settings.secret_key:
        changes["secret_key"] = development_secret_key(instance_path)
    if not settings.database_url:
        changes["database_url"] = f"sqlite:///{instance_path / 'wg.sqlite3'}"
    host = urlsplit(settings.base_url).hostname or "localhost"
    domain = host if "." in host and not host.replace(".", "").isdigit() else "localhost"
    mail_from = settings.mail_from or f"{settings.group_name} <noreply@{domain}>"
    changes["mail_from"] = mail_from
    address = split_mailbox(mail_from)[1]
    if not settings.reply_to:
        changes["reply_to"] = address
    if not settings.organizer_email:
        changes["organizer_email"] = address
    if not settings.coordinator_emails:
        changes["coordinator_emails"] = (f"coordinator@{domain}",)
    return Settings(**{**settings.__dict__, **changes})


def _refuse_an_unsafe_production(settings: Settings) -> None:
    for name in ("secret_key", "mail_from", "coordinator_emails", "smtp_host"):
        if not getattr(settings, name):
            raise SettingError(f"WG_{name.upper()}: required when WG_ENV=production")
    if settings.base_url.startswith("http://"):
        raise SettingError("WG_BASE_URL: must be https:// when WG_ENV=production")


def development_secret_key(instance_path: Path) -> str:
    """The key kept in the instance folder, so that sessions and links survive a restart in
    development; until `prepare_instance` has written one, a key for this process only."""
    path = instance_path / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    return secrets.token_urlsafe(48)


def prepare_instance(instance_path: Path, settings: Settings) -> None:
    """Make the instance folder (SQLite makes the file, not the folder) and keep the
    development key in it. `wg run` and `wg db upgrade` call this; the app factory writes
    nothing."""
    instance_path.mkdir(parents=True, exist_ok=True)
    if settings.production:
        return
    try:
        fd = os.open(instance_path / SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # kept from before, or another `wg` process wrote it first
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(settings.secret_key)


def settings(app: Flask | None = None) -> Settings:
    """The running app's settings."""
    return (app or current_app).extensions["wg.settings"]
