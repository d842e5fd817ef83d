"""A real mail system for the production tests: Postfix (submission with STARTTLS and login,
smtps, an MX port) and Dovecot (IMAP, and Postfix's SASL authority), on free loopback ports.

All state lives in one temporary folder; the machine's own Postfix and Dovecot are neither
used nor changed. Two domains: `app.example` (the service's mailboxes) and `remote.example` (the
members'). Postfix delivers into Dovecot's Maildirs; a subaddress (`secretariat+b-...`) lands in
its mailbox; mail to an unknown `remote.example` user is accepted and then bounced with a real DSN
to the envelope sender; `pipe@app.example` goes through Postfix's pipe(8) to `wg inbound read`,
as the README's recipe says. See ../shared/recipes/postfix-dovecot-test-stack.md.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from string import Template

import trustme
from imapclient import IMAPClient

from tests.mail import free_port
from tests.processes import WG, wait_until

TEMPLATES = Path(__file__).parent / "mailstack"
POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 5000
PIPE_ADDRESS = "pipe@app.example"


@dataclass
class Mailbox:
    address: str
    password: str
    maildir: Path

    def files(self) -> list[Path]:
        return sorted(self.maildir.glob("new/*")) + sorted(self.maildir.glob("cur/*"))

    def messages(self, *, every_folder: bool = False) -> list[EmailMessage]:
        """The INBOX's messages, or with `every_folder` also those filed away (Maildir++)."""
        paths = self.files()
        if every_folder:
            paths = sorted(p for p in self.maildir.rglob("*") if p.parent.name in ("cur", "new"))
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in paths
        ]

    def wait_for(self, count: int, *, timeout: float = 60) -> list[EmailMessage]:
        """The mailbox's messages once it holds at least `count`."""
        wait_until(lambda: len(self.files()) >= count, timeout=timeout, every=0.2)
        return self.messages()


@dataclass
class MailStack:
    directory: Path
    ca_file: str
    submission: int  # STARTTLS and login required, sender must be the login's own
    smtps: int
    mx: int
    imap: int  # STARTTLS
    imaps: int
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)

    def __getitem__(self, address: str) -> Mailbox:
        return self.mailboxes[address]

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in self.directory.glob("*/*.log")
        )

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def send_as(self, address: str, message: EmailMessage) -> None:
        """Send `message` as a mail client would: submission, STARTTLS, the mailbox's login."""
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as client:
            client.starttls(context=self.tls())
            client.login(address, self.mailboxes[address].password)
            client.send_message(message)

    def read_over_imap(self, address: str) -> list[EmailMessage]:
        """Every message in the mailbox's INBOX, read over IMAP with STARTTLS."""
        with IMAPClient("127.0.0.1", port=self.imap, ssl=False, timeout=30) as client:
            client.starttls(self.tls())
            client.login(address, self.mailboxes[address].password)
            client.select_folder("INBOX", readonly=True)
            fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
        return [
            email.message_from_bytes(data[b"BODY[]"], policy=email.policy.default)  # type: ignore[misc]
            for _uid, data in sorted(fetched.items())
        ]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def available() -> str:
    """Why the stack cannot run here, or "" when it can."""
    if os.geteuid() != 0:
        return "Postfix runs only as root"
    for program in (POSTFIX, DOVECOT):
        if not os.path.exists(program):
            return f"{program} is not installed (.ci/run installs postfix and dovecot-imapd)"
    return ""


def _let_the_pipe_user_run_wg() -> None:
    """Postfix's pipe runs `wg` as `nobody`: it must reach the virtual environment's Python.

    A root-owned /root is 0700 on these machines; execute (search) permission alone lets
    `nobody` follow the path to the interpreter without listing anything.
    """
    interpreter = Path(os.path.realpath(Path(WG).parent / "python"))
    for folder in [*reversed(interpreter.parents), *reversed(Path(WG).parents)]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def start(
    users: dict[str, str], environment_for: Callable[[MailStack], dict[str, str]]
) -> MailStack:
    """Start Postfix and Dovecot with a mailbox per entry of `users` (address: password);
    the pipe transport runs `wg` with `environment_for(stack)`, in the env file it reads."""
    directory = Path(tempfile.mkdtemp(prefix="wgms-", dir="/tmp"))
    directory.chmod(0o755)  # postfix, dovecot and uid 5000 must all reach into it
    ports = dict(zip(("P1", "P2", "P3", "P4", "P5"), (free_port() for _ in range(5)), strict=True))
    for sub in ("tls", "postfix/etc", "postfix/spool", "dovecot", "vmail"):
        (directory / sub).mkdir(parents=True)
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1", "mx.app.example")
    ca.cert_pem.write_to_path(directory / "tls/ca.pem")
    certificate.private_key_pem.write_to_path(directory / "tls/server.key")
    for pem in certificate.cert_chain_pems:
        pem.write_to_path(directory / "tls/server.pem", append=True)
    values = {**ports, "DIR": str(directory), "WG": WG}
    for name, sub in (("main.cf", "postfix/etc"), ("master.cf", "postfix/etc")):
        text = Template((TEMPLATES / name).read_text()).safe_substitute(values)
        (directory / sub / name).write_text(text)
    dovecot_conf = Template((TEMPLATES / "dovecot.conf").read_text()).safe_substitute(values)
    (directory / "dovecot/dovecot.conf").write_text(dovecot_conf)

    stack = MailStack(
        directory=directory,
        ca_file=str(directory / "tls/ca.pem"),
        submission=ports["P1"],
        smtps=ports["P2"],
        mx=ports["P3"],
        imap=ports["P4"],
        imaps=ports["P5"],
    )
    vmailbox, passwd, senders = [], [], []
    for address, password in users.items():
        local, domain = address.split("@")
        home = directory / "vmail" / domain / local
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True)
        stack.mailboxes[address] = Mailbox(address, password, home / "Maildir")
        vmailbox.append(f"{address} {domain}/{local}/Maildir/")
        passwd.append(f"{address}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{home}::")
        senders.append(f"{address} {address}")
    vmailbox.append(f"{PIPE_ADDRESS} app.example/pipe/Maildir/")
    etc = directory / "postfix/etc"
    (etc / "vmailbox").write_text("\n".join(vmailbox) + "\n")
    (etc / "senders").write_text("\n".join(senders) + "\n")
    (etc / "valias").write_text("postmaster@app.example secretariat@app.example\n")
    (etc / "transport").write_text(f"{PIPE_ADDRESS} wgpipe:\n")
    (directory / "dovecot/users").write_text("\n".join(passwd) + "\n")
    env_file = directory / "wg.env"
    settings = environment_for(stack)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    env_file.chmod(0o644)
    subprocess.run(["chown", "-R", f"{MAIL_UID}:{MAIL_UID}", directory / "vmail"], check=True)
    _let_the_pipe_user_run_wg()

    postfix = [POSTFIX, "-c", str(etc)]
    try:
        subprocess.run([DOVECOT, "-c", str(directory / "dovecot/dovecot.conf")], check=True)
        subprocess.run([*postfix, "start"], check=True, capture_output=True)
        for port in ports.values():
            wait_until(lambda port=port: _listening(port), timeout=15)
    except BaseException:
        print(stack.log())
        stop(stack)
        raise
    return stack


def stop(stack: MailStack) -> None:
    """Stop both daemons (only these, by their own pid files) and remove every file."""
    subprocess.run(
        [POSTFIX, "-c", str(stack.directory / "postfix/etc"), "stop"], capture_output=True
    )
    pid_file = stack.directory / "dovecot/run/master.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(stack.directory, ignore_errors=True)
