"""SMTP transport: a small pool of reused connections that reports every send as sent/retry/failed.

Nothing here raises for a delivery problem: every SMTP reply, dropped connection, TLS or login
problem becomes a `SendResult`, so the caller only has to decide what to do with the outcome.
Problems of our own set-up (unreachable relay, TLS, login, a refused envelope sender) are HELD,
never FAILED: the member's address is fine, and the mail must wait while the operator mends it.
"""

import enum
import re
import select
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType


class Security(enum.StrEnum):
    """How the connection to the SMTP server is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect to the SMTP server."""

    host: str
    port: int = 25
    security: Security = Security.NONE
    username: str = ""
    password: str = field(default="", repr=False)  # kept out of repr so it never reaches logs
    timeout: float = 30.0  # seconds, for connect and every command
    connections: int = 1  # how many connections are kept open and reused
    rate_per_minute: int = 0  # 0 = no limit; else across all connections, burst <= connections
    local_hostname: str | None = None  # the EHLO name; None: this machine's FQDN
    cafile: str | None = None  # a CA trusted besides the system's; verification is always on

    def __post_init__(self) -> None:
        # Accept plain strings from configuration ("starttls") and reject unknown ones early.
        object.__setattr__(self, "security", Security(self.security))
        if self.connections < 1:
            raise ValueError("connections must be at least 1")
        if self.rate_per_minute < 0:
            raise ValueError("rate_per_minute must not be negative")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


class Outcome(enum.StrEnum):
    """What became of one message."""

    SENT = "sent"
    RETRY = "retry"  # temporary: try again later
    FAILED = "failed"  # permanent: the server refused this message or recipient
    HELD = "held"  # our set-up failed (relay, TLS, login, sender): wait, it is not the message


# A reply whose text starts with an enhanced status code 5.7.x (RFC 3463: security or policy).
_POLICY_REPLY = re.compile(r"\d{3}[ -]5\.7\.\d{1,3}(?!\d)")
# A recipient refused because we may not relay: our login or relay set-up, not the member.
_RELAY_DENIED = re.compile(
    r"relay(ing)? (access )?(denied|not permitted)|authentication required", re.I
)
# Postfix (smtpd_delay_reject) refuses our envelope sender only at RCPT TO, in these words.
_SENDER_REJECTED = re.compile(r"sender address rejected|not owned by", re.I)
# The only refusal of MAIL FROM that is about the message rather than about us.
_MESSAGE_TOO_BIG = 552
# smtplib's own order of preference; one of them is tried, once.
_AUTH_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send, with the SMTP reply code and one human-readable line."""

    outcome: Outcome
    code: int | None  # SMTP reply code when there was one
    detail: str  # e.g. "550 5.1.1 <x@y>: user unknown" or "connection dropped: ..."
    fault: str = ""  # for HELD: which part of our set-up, e.g. "login", "tls", "sender"

    @property
    def policy_rejection(self) -> bool:
        """True for a 5.7.x refusal (DMARC, SPF, blocklist): the sender's problem, not the member's.

        Such a refusal says nothing about the member's address, so it must not count against it.
        """
        return (
            self.code is not None
            and 500 <= self.code < 600
            and _POLICY_REPLY.match(self.detail) is not None
        )


class RateLimiter:
    """Thread-safe token bucket: at most `per_minute` acquisitions a minute, bursts of `burst`.

    Each caller reserves the next free slot under the lock and sleeps outside it, so waiting
    threads are served in arrival order and never hold the lock while asleep.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._per_second = per_minute / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take one token, sleeping until it is due."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(self._burst, self._tokens + elapsed * self._per_second)
            self._tokens -= 1.0  # may go negative: a reservation later callers queue behind
            wait = -self._tokens / self._per_second if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


class _StartTlsNotOffered(smtplib.SMTPException):
    """The server did not advertise STARTTLS although the settings require it."""


class Transport:
    """Thread-safe SMTP sender that keeps up to `settings.connections` connections for reuse."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._where = f"{settings.host}:{settings.port}"
        # Built once: loading the system trust store is not free. Verification stays on.
        self._tls: ssl.SSLContext | None = None
        if settings.security != Security.NONE:
            self._tls = tls_context(settings.cafile)
        self._limiter: RateLimiter | None = None
        if settings.rate_per_minute > 0:
            self._limiter = RateLimiter(settings.rate_per_minute, burst=settings.connections)
        # A slot per connection: a sender holds at most one connection, so at most
        # `connections` are ever open (idle + in use) without further bookkeeping.
        self._slots = threading.BoundedSemaphore(settings.connections)
        self._lock = threading.Lock()
        self._idle: list[smtplib.SMTP] = []
        # close() bumps the generation, so connections in use at that moment are QUIT when
        # returned instead of going back into the pool.
        self._generation = 0

    @property
    def settings(self) -> SmtpSettings:
        return self._settings

    def send(self, sender: str, recipient: str, message: bytes) -> SendResult:
        """Send one complete message (bytes with CRLF line ends, sent unaltered) to one recipient.

        Blocks for the rate limit and for a free connection; never raises for SMTP or network
        problems, which all come back as a `SendResult`.
        """
        if self._limiter is not None:
            self._limiter.acquire()
        with self._slots:
            conn, generation = self._take_idle()
            if conn is None:
                try:
                    conn = self._connect()
                except (smtplib.SMTPException, OSError) as exc:
                    return self._setup_failure(exc)
            reusable = False
            try:
                result, reusable = self._deliver(conn, sender, recipient, message)
            finally:
                self._give_back(conn, generation, reusable)
            return result

    def close(self) -> None:
        """QUIT every pooled connection; a later send opens fresh ones."""
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for conn in idle:
            _quit(conn)

    def __enter__(self) -> "Transport":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- pool -------------------------------------------------------------------------------

    def _take_idle(self) -> tuple[smtplib.SMTP | None, int]:
        """Pop a pooled connection the server has not hung up on, or None to open a new one."""
        while True:
            with self._lock:
                generation = self._generation
                if not self._idle:
                    return None, generation
                conn = self._idle.pop()
            if not _peer_hung_up(conn):
                return conn, generation
            conn.close()

    def _give_back(self, conn: smtplib.SMTP, generation: int, reusable: bool) -> None:
        """Return a usable connection to the pool; close a broken or outdated one."""
        if not reusable:
            conn.close()
            return
        with self._lock:
            if generation == self._generation:
                self._idle.append(conn)
                return
        _quit(conn)

    def _connect(self) -> smtplib.SMTP:
        """Open, secure and log in one connection."""
        s = self._settings
        if s.security == Security.SSL:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host,
                s.port,
                local_hostname=s.local_hostname,
                timeout=s.timeout,
                context=self._tls,
            )
        else:
            conn = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)
        try:
            conn.ehlo_or_helo_if_needed()
            if s.security == Security.STARTTLS:
                if not conn.has_extn("starttls"):
                    raise _StartTlsNotOffered()
                conn.starttls(context=self._tls)
                conn.ehlo()  # capabilities (AUTH) may differ once encrypted
            if s.username:
                _login_once(conn, s.username, s.password)
        except BaseException:
            conn.close()
            raise
        return conn

    def check(self) -> SendResult:
        """Connect, secure and log in, then QUIT: SENT when the set-up works, else HELD."""
        try:
            conn = self._connect()
        except (smtplib.SMTPException, OSError) as exc:
            return self._setup_failure(exc)
        _quit(conn)
        return SendResult(Outcome.SENT, None, f"{self._where} accepts our session")

    def _setup_failure(self, exc: smtplib.SMTPException | OSError) -> SendResult:
        """Describe why a connection could not be set up; always HELD (it is not the message)."""
        where = self._where
        retry = Outcome.HELD
        if isinstance(exc, _StartTlsNotOffered):
            return SendResult(
                retry,
                None,
                f"STARTTLS is not offered by {where}; check the SMTP security setting",
                "tls",
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return SendResult(
                retry,
                exc.smtp_code,
                f"authentication failed for {self._settings.username!r} at {where}: "
                f"{_reply_line(exc.smtp_code, exc.smtp_error)}",
                "login",
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return SendResult(retry, None, f"authentication failed at {where}: {exc}", "login")
        if isinstance(exc, smtplib.SMTPResponseException):
            return SendResult(
                retry,
                exc.smtp_code,
                f"{where} refused the session: {_reply_line(exc.smtp_code, exc.smtp_error)}",
                "session",
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return SendResult(
                retry,
                None,
                f"TLS certificate verification failed for {where}: {exc.verify_message}",
                "tls",
            )
        if isinstance(exc, ssl.SSLError):
            detail = f"TLS handshake with {where} failed: {_one_line(exc)}"
            return SendResult(retry, None, detail, "tls")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            detail = f"connection to {where} dropped: {_one_line(exc)}"
            return SendResult(retry, None, detail, "connection")
        if isinstance(exc, TimeoutError):
            return SendResult(retry, None, f"connection to {where} timed out", "connection")
        if isinstance(exc, OSError):
            detail = f"cannot connect to {where}: {_one_line(exc)}"
            return SendResult(retry, None, detail, "connection")
        detail = f"SMTP session with {where} failed: {_one_line(exc)}"
        return SendResult(retry, None, detail, "session")

    # -- one message ------------------------------------------------------------------------

    def _deliver(
        self, conn: smtplib.SMTP, sender: str, recipient: str, message: bytes
    ) -> tuple[SendResult, bool]:
        """Run one MAIL/RCPT/DATA transaction; return the result and whether conn is reusable."""
        # Internationalised addresses need SMTPUTF8; ASCII ones go out exactly as before.
        options = [] if sender.isascii() and recipient.isascii() else ["SMTPUTF8"]
        try:
            if conn.has_extn("pipelining"):
                refused = _sendmail_pipelined(conn, sender, recipient, message, options)
            else:
                refused = conn.sendmail(sender, [recipient], message, mail_options=options)
        except (smtplib.SMTPException, OSError) as exc:
            return _refusal(conn, exc, sender, recipient)
        if recipient in refused:  # only when other recipients were accepted; kept for safety
            code, text = refused[recipient]
            return _from_reply(code, text), True
        # sendmail only returns normally when DATA was answered with exactly 250.
        return SendResult(Outcome.SENT, 250, "250 message accepted"), True


def _refusal(
    conn: smtplib.SMTP, exc: smtplib.SMTPException | OSError, sender: str, recipient: str
) -> tuple[SendResult, bool]:
    """What a failed transaction means, and whether its connection can be used again."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = exc.recipients.get(recipient) or next(iter(exc.recipients.values()))
        result = _from_reply(code, text)
        if result.outcome is not Outcome.SENT and _SENDER_REJECTED.search(result.detail):
            result = _ours(result, f"the relay refused our envelope sender {sender}", "sender")
        elif code == 530 or (result.policy_rejection and _RELAY_DENIED.search(result.detail)):
            result = _ours(result, "the relay refused to relay for us", "relay")
        return result, _reset(conn)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        result = _from_reply(exc.smtp_code, exc.smtp_error)
        if exc.smtp_code != _MESSAGE_TOO_BIG and result.outcome is not Outcome.SENT:
            result = _ours(result, f"the relay refused our envelope sender {sender}", "sender")
        return result, _reset(conn)
    if isinstance(exc, smtplib.SMTPDataError):
        return _from_reply(exc.smtp_code, exc.smtp_error), _reset(conn)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # Raised before anything is sent, when SMTPUTF8 is needed but not offered.
        return SendResult(Outcome.FAILED, None, f"cannot send to this address: {exc}"), True
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendResult(Outcome.RETRY, None, f"connection dropped: {_one_line(exc)}"), False
    if isinstance(exc, smtplib.SMTPResponseException):
        return _from_reply(exc.smtp_code, exc.smtp_error), False
    if isinstance(exc, TimeoutError):
        return SendResult(Outcome.RETRY, None, "timed out waiting for the server"), False
    if isinstance(exc, OSError):
        return SendResult(Outcome.RETRY, None, f"connection dropped: {_one_line(exc)}"), False
    return SendResult(Outcome.RETRY, None, f"SMTP error: {_one_line(exc)}"), False


_LEADING_PERIOD = re.compile(rb"(?m)^\.")


def _sendmail_pipelined(
    conn: smtplib.SMTP, sender: str, recipient: str, message: bytes, options: list[str]
) -> dict[str, tuple[int, bytes]]:
    """smtplib's sendmail for one recipient, with MAIL, RCPT and DATA in one write (RFC 2920
    PIPELINING): two round trips a message instead of four. Raises as sendmail does."""
    params = list(options)
    if "SMTPUTF8" in params:
        if not conn.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("SMTPUTF8 is not offered by the server")
        conn.command_encoding = "utf-8"
    if conn.has_extn("size"):
        params.append(f"SIZE={len(message)}")
    extra = (" " + " ".join(params)) if params else ""
    conn.send(
        f"MAIL FROM:{smtplib.quoteaddr(sender)}{extra}\r\n"
        f"RCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n"
    )
    (mail, mail_text), (rcpt, rcpt_text), (data, data_text) = (conn.getreply() for _ in "123")
    if data == 354 and not (mail == 250 and rcpt in (250, 251)):
        conn.send(b".\r\n")  # a server that opened DATA anyway gets an empty message ended
        conn.getreply()
    if mail != 250:
        raise smtplib.SMTPSenderRefused(mail, mail_text, sender)
    if rcpt not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({recipient: (rcpt, rcpt_text)})
    if data != 354:
        raise smtplib.SMTPDataError(data, data_text)
    body = _LEADING_PERIOD.sub(b"..", message)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    conn.send(body + b".\r\n")
    code, text = conn.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, text)
    return {}


def _from_reply(code: int, text: bytes | str) -> SendResult:
    """Classify an SMTP reply: 2xx sent, 5xx failed, anything else (4xx, odd codes) retry."""
    if 200 <= code < 300:
        outcome = Outcome.SENT
    elif 500 <= code < 600:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.RETRY
    return SendResult(outcome, code, _reply_line(code, text))


def _ours(result: SendResult, what: str, fault: str) -> SendResult:
    """The same reply, HELD: it says something about our set-up, not about the member."""
    return SendResult(Outcome.HELD, result.code, f"{what}: {result.detail}", fault)


def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system's trust, and `cafile`'s CA besides it."""
    context = ssl.create_default_context()
    if cafile:
        context.load_verify_locations(cafile=cafile)
    return context


def _login_once(conn: smtplib.SMTP, username: str, password: str) -> None:
    """Log in with one mechanism, once.

    smtplib's login() tries every mechanism both sides know after a refusal, so a wrong
    password costs two or three failures per connection, and fail2ban bans the sender.
    """
    offered = conn.esmtp_features.get("auth", "").upper().split()
    mechanism = next((m for m in _AUTH_MECHANISMS if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPNotSupportedError("the server offers no login mechanism we know")
    conn.user, conn.password = username, password
    handler = getattr(conn, "auth_" + mechanism.lower().replace("-", "_"))
    conn.auth(mechanism, handler, initial_response_ok=True)


def _reply_line(code: int, text: bytes | str) -> str:
    """Format a (possibly multi-line) reply as one line: "550 5.1.1 <x@y>: user unknown"."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join([str(code), *text.split()])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _reset(conn: smtplib.SMTP) -> bool:
    """RSET after a refused transaction; True if the connection can be reused."""
    try:
        code, _ = conn.rset()
    except (smtplib.SMTPException, OSError):
        return False
    return code == 250


def _quit(conn: smtplib.SMTP) -> None:
    """Say goodbye politely, ignoring a server that is already gone."""
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        conn.close()


def _peer_hung_up(conn: smtplib.SMTP) -> bool:
    """True if an idle connection has pending input, i.e. the server closed it or said 421.

    An SMTP server never speaks unprompted between transactions except to hang up, so this
    catches idle timeouts without the round trip a NOOP would cost.
    """
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True
