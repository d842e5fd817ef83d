"""A real IMAP server for tests: Dovecot on free loopback ports, TLS from a test CA.

IMAPS and IMAP+STARTTLS listen on 127.0.0.1; `ssl = required` refuses any login without
TLS. Each test gets a mailbox of its own (`add_mailbox`), so nothing leaks between tests
and the server can live for a whole module.
"""

from __future__ import annotations

import email
import email.policy
import grp
import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.mail import free_port

DOVECOT = "/usr/sbin/dovecot"
PREPARED_USERS = 50

# Dovecot refuses to give mail to uid 0: as root the mail belongs to `nobody`, and the
# services drop to the users the Debian package creates. As anyone else, everything runs
# as that user (a "rootless" Dovecot).
CONFIG = """\
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{directory}/server.pem
ssl_key = <{directory}/server.pem
auth_mechanisms = plain login
# A wrong password is answered within half a second, not after 2 s.
auth_failure_delay = 0
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
mail_location = maildir:~/Maildir
{namespace}
passdb {{
  driver = passwd-file
  args = {directory}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={directory}/home/%u
}}
# A failed login would make every later login from 127.0.0.1 wait 4 s or more (the
# anvil "auth penalty"); a socket the auth process may not open turns it off.
# No chroot here or for imap-login: only root may chroot.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {starttls_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"""

# Folders live under "INBOX." as on Courier- or Cyrus-style servers.
INBOX_PREFIX_NAMESPACE = """\
namespace inbox {
  prefix = INBOX.
  separator = .
  inbox = yes
}
"""


def _user(*names: str) -> str:
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise LookupError(f"none of the users {names} exists")


@dataclass
class Mailbox:
    """One user's mailbox on the test server, seen through IMAPClient."""

    server: DovecotServer
    username: str
    password: str

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        with IMAPClient(
            "127.0.0.1", port=self.server.imaps_port, ssl_context=self.server.ssl_context()
        ) as client:
            client.login(self.username, self.password)
            yield client

    def can_log_in(self) -> bool:
        try:
            with self.client():
                return True
        except LoginError:
            return False

    def append(self, *messages: bytes, folder: str = "INBOX", flags: tuple = ()) -> None:
        with self.client() as client:
            for raw in messages:
                client.append(folder, raw, flags=flags)

    def folders(self) -> list[str]:
        with self.client() as client:
            return sorted(name for _flags, _delimiter, name in client.list_folders())

    def message_ids(self, folder: str = "INBOX") -> list[str]:
        """The Message-ID of every message in `folder`, sorted (\\Deleted ones too)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return []
            fetched = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        found = []
        for data in fetched.values():
            header = email.message_from_bytes(
                data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"], policy=email.policy.default
            )
            found.append(str(header["Message-ID"]).strip())
        return sorted(found)

    def flags(self, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            return [data[b"FLAGS"] for data in client.fetch(uids, ["FLAGS"]).values()]


class DovecotServer:
    """`dovecot -F` in a directory of its own, started and stopped by the test."""

    def __init__(self, *, namespace: str = "") -> None:
        # Not under pytest's tmp_path: that is private to the test user, and the mail
        # processes run as `nobody` when the tests run as root.
        self.directory = Path(tempfile.mkdtemp(prefix="wg-dovecot-"))
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self._prepare(namespace)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _prepare(self, namespace: str) -> None:
        """The certificate, the users and the configuration, in the directory."""
        self.directory.chmod(0o755)
        self.imaps_port = free_port()
        self.starttls_port = free_port()
        self.ca = trustme.CA()
        self.ca_path = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self.ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
            str(self.directory / "server.pem")
        )
        # Dovecot looks at the users file again at most once a second, so users are made
        # ahead, before it starts; add_mailbox hands them out.
        self._users = [
            (f"wg-{number:03d}-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
            for number in range(PREPARED_USERS)
        ]
        (self.directory / "users").write_text(
            "".join(f"{name}:{{PLAIN}}{password}\n" for name, password in self._users)
        )
        home = self.directory / "home"
        home.mkdir()
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("nobody")
            internal_user, login_user = _user("dovecot", "nobody"), _user("dovenull", "nobody")
            os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
        else:
            mail_user = pwd.getpwuid(os.geteuid())
            internal_user = login_user = mail_user.pw_name
        self.config = self.directory / "dovecot.conf"
        self.config.write_text(
            CONFIG.format(
                directory=self.directory,
                internal_user=internal_user,
                internal_group=grp.getgrgid(pwd.getpwnam(internal_user).pw_gid).gr_name,
                login_user=login_user,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                namespace=namespace,
                starttls_port=self.starttls_port,
                imaps_port=self.imaps_port,
            )
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def start(self) -> DovecotServer:
        with (self.directory / "output.log").open("wb") as output:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self.log()}")
            if all(self._accepts(port) for port in (self.imaps_port, self.starttls_port)):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not listen within 10 s: {self.log()}")
            time.sleep(0.05)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """What Dovecot said, on the terminal and in its log file."""
        paths = (self.directory / "output.log", self.directory / "dovecot.log")
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    def add_mailbox(self) -> Mailbox:
        """A user of its own, with an empty mailbox."""
        if not self._users:
            name, password = f"wg-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
            with (self.directory / "users").open("a") as users:
                users.write(f"{name}:{{PLAIN}}{password}\n")
            mailbox = Mailbox(self, name, password)
            # Dovecot reads the file again when it notices the change (about a second).
            deadline = time.monotonic() + 10
            while not mailbox.can_log_in():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Dovecot never took the new user {name}")
                time.sleep(0.05)
            return mailbox
        return Mailbox(self, *self._users.pop(0))
