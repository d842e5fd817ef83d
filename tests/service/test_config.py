"""Settings: read from WG_* variables, checked at start, one clear line for a wrong value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import SettingError, load_settings, prepare_instance

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
        ("WG_SMTP_CA_FILE", "/nonexistent/ca.pem"),
        ("WG_IMAP_CA_FILE", "/nonexistent/ca.pem"),
        ("WG_IMAP_SECURITY", "tls"),
        ("WG_SMTP_HELO", "wg example"),
        ("WG_DKIM_KEY_FILE", "/etc/hostname"),
        ("WG_BOUNCE_ADDRESS", "bounces@"),
        ("WG_RATELIMIT_STORAGE", "postgres"),
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


def test_development_secret_key_is_kept_once_the_instance_is_prepared(tmp_path):
    first = load_settings({}, tmp_path)
    assert not tmp_path.joinpath("secret_key").exists()  # reading settings writes nothing

    prepare_instance(tmp_path, first)
    second = load_settings({}, tmp_path).secret_key

    assert len(first.secret_key) >= 40 and first.secret_key == second
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


def test_dkim_needs_its_three_settings_together(tmp_path):
    with pytest.raises(SettingError) as error:
        load_settings({"WG_DKIM_SELECTOR": "wg2026", "WG_DKIM_DOMAIN": "wg.example"}, tmp_path)
    assert str(error.value).startswith("WG_DKIM_SELECTOR: ")


@pytest.mark.parametrize(
    ("given", "expected"),
    [({"WG_IMAP_PORT": "143"}, "starttls"), ({}, "ssl"), ({"WG_IMAP_SECURITY": "none"}, "none")],
)
def test_imap_security_follows_the_port_unless_set(tmp_path, given, expected):
    assert load_settings(given, tmp_path).imap_security == expected


def test_the_relay_settings_reach_the_transport(tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read here")
    settings = load_settings(
        {**PRODUCTION, "WG_SMTP_CA_FILE": str(ca_file), "WG_SMTP_HELO": "wg.example"}, tmp_path
    )
    smtp = settings.smtp()
    assert (smtp.cafile, smtp.local_hostname) == (str(ca_file), "wg.example")


def test_the_return_path_is_a_subaddress_of_the_reply_mailbox_or_the_bounce_address(tmp_path):
    replies = load_settings({"WG_REPLY_TO": "Secretariat <secretariat@wg.example>"}, tmp_path)
    bounces = load_settings({"WG_BOUNCE_ADDRESS": "bounces@wg.example"}, tmp_path)
    assert replies.return_path_base == "secretariat@wg.example"
    assert bounces.return_path_base == "bounces@wg.example"


def test_a_sender_name_with_a_comma_keeps_its_address_and_domain(tmp_path):
    settings = load_settings(
        {"WG_MAIL_FROM": '"Working Group, Cambodia" <noreply@wg.example>'}, tmp_path
    )
    assert settings.mail_domain == "wg.example"
    assert settings.reply_to == "noreply@wg.example"
