"""Settings: read from WG_* variables, checked at start, one clear line for a wrong value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import SettingError, load_settings

PRODUCTION = {
    "WG_ENV": "production",
    "WG_SECRET_KEY": "k" * 40,
    "WG_MAIL_FROM": "Working Group <noreply@wg.example>",
    "WG_COORDINATOR_EMAILS": "coordinator@wg.example",
    "WG_SMTP_HOST": "smtp.wg.example",
    "WG_SMTP_SECURITY": "starttls",
    "WG_BASE_URL": "https://wg.example",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WG_SMTP_PORT", "twenty-five"),
        ("WG_SMTP_SECURITY", "tls13"),
        ("WG_SMTP_CONNECTIONS", "0"),
        ("WG_TIMEZONE", "Mars/Olympus"),
        ("WG_BASE_URL", "wg.example"),
        ("WG_COORDINATOR_EMAILS", "coordinator@, other@wg.example"),
        ("WG_MAIL_FROM", "Group <noreply@wg.example>\r\nBcc: x@example.org"),
        ("WG_DATABASE_URL", "mysql://root@localhost/wg"),
        ("WG_ENV", "staging"),
    ],
)
def test_a_wrong_value_fails_naming_the_setting(tmp_path, name, value):
    with pytest.raises(SettingError) as error:
        load_settings({name: value}, tmp_path)
    assert str(error.value).startswith(f"{name}: ")
    assert "\n" not in str(error.value)


def test_defaults_need_no_configuration(tmp_path):
    settings = load_settings({}, tmp_path)

    assert settings.database_url == f"sqlite:///{tmp_path / 'wg.sqlite3'}"
    assert settings.timezone == "Asia/Phnom_Penh"
    assert settings.coordinator_emails == ("coordinator@localhost",)
    assert settings.smtp().port == settings.catcher_port  # the embedded catcher of `wg run`


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    first = load_settings({}, tmp_path).secret_key
    second = load_settings({}, tmp_path).secret_key

    assert len(first) >= 40 and first == second
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("missing", ["WG_SECRET_KEY", "WG_SMTP_HOST", "WG_COORDINATOR_EMAILS"])
def test_production_refuses_to_start_without_what_it_needs(tmp_path, missing):
    environ = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(SettingError, match=f"^{missing}: required when WG_ENV=production"):
        load_settings(environ, tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_production_settings_are_accepted(tmp_path):
    settings = load_settings(PRODUCTION, tmp_path)
    smtp = settings.smtp()
    assert (smtp.host, smtp.port, smtp.security.value) == ("smtp.wg.example", 587, "starttls")


def test_plain_postgresql_url_gets_the_installed_driver(tmp_path):
    settings = load_settings({"WG_DATABASE_URL": "postgresql://u@db/wg"}, tmp_path)
    assert settings.database_url == "postgresql+psycopg://u@db/wg"


def test_wg_command_prints_one_line_for_a_bad_setting(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "outbox"],
        env={"WG_SMTP_PORT": "x", "WG_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["wg: WG_SMTP_PORT: 'x' is not a whole number"]
