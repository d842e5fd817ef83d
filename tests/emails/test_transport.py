"""Tests for emails.transport against real aiosmtpd servers on 127.0.0.1 (no smtplib mocks)."""

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from emails.transport import (
    Outcome,
    RateLimiter,
    Security,
    SendResult,
    SmtpSettings,
    Transport,
    _peer_hung_up,
    tls_context,
)

SENDER = "list@wg.example"
MESSAGE = (
    b"From: Working Group <list@wg.example>\r\n"
    b"To: member@example.org\r\n"
    b"Subject: =?utf-8?q?Einladung_f=C3=BCr_Juni?=\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hallo,\r\n"
    b".a line that starts with a dot survives dot-stuffing\r\n"
    b"..and so does one with two\r\n"
    b"Gr\xc3\xbc\xc3\x9fe und bis bald \xe2\x80\x94 die Koordination\r\n"
)


class RecordingHandler:
    """Accepts mail and records envelopes and each client connection (by peer) that said EHLO.

    `mail_reply` answers every MAIL FROM instead of accepting it; `rcpt_replies` /
    `data_replies` map a recipient to the reply given at RCPT / DATA instead of accepting;
    `drop_data` lists recipients whose DATA makes the server hang up (once each).
    """

    def __init__(
        self,
        rcpt_replies: dict[str, str] | None = None,
        data_replies: dict[str, str] | None = None,
        drop_data: set[str] | None = None,
        mail_reply: str = "",
        pipelining: bool = False,
    ) -> None:
        self.mail_reply = mail_reply
        self.pipelining = pipelining
        self.rcpt_replies = rcpt_replies or {}
        self.data_replies = data_replies or {}
        self.drop_data = set(drop_data or ())
        self.envelopes: list = []
        self.peers: list[tuple] = []

    @property
    def sessions(self) -> int:
        """How many distinct client connections were opened."""
        return len(set(self.peers))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if session.peer not in self.peers:
            self.peers.append(session.peer)
        if self.pipelining:  # aiosmtpd reads commands one by one: pipelined ones work
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        recipient = envelope.rcpt_tos[0]
        if recipient in self.drop_data:
            self.drop_data.discard(recipient)
            server.transport.close()
            return "250 never seen by the client"
        if recipient in self.data_replies:
            return self.data_replies[recipient]
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_server() -> Iterator[Callable[..., int]]:
    """Start aiosmtpd Controllers on free ports; all are stopped after the test."""
    controllers: list[Controller] = []

    def start(handler: object, **kwargs: object) -> int:
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def cafile(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def settings(port: int, **overrides: object) -> SmtpSettings:
    values: dict = {
        "host": "127.0.0.1",
        "port": port,
        "timeout": 5.0,
        "local_hostname": "client.test",
    }
    values.update(overrides)
    return SmtpSettings(**values)


def send_one(port: int, recipient: str = "member@example.org", **overrides: object) -> SendResult:
    with Transport(settings(port, **overrides)) as transport:
        return transport.send(SENDER, recipient, MESSAGE)


# -- delivery and connection reuse -----------------------------------------------------------


def test_message_is_delivered_byte_for_byte(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    result = send_one(port)

    assert result.outcome is Outcome.SENT
    assert result.code == 250
    [envelope] = handler.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["member@example.org"]
    assert envelope.original_content == MESSAGE


def test_internationalised_recipient_is_sent_with_smtputf8(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    result = send_one(port, recipient="jürgen@beispiel.de")

    assert result.outcome is Outcome.SENT
    assert handler.envelopes[0].rcpt_tos == ["jürgen@beispiel.de"]


def test_twenty_sends_on_one_connection_use_a_single_smtp_session(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    with Transport(settings(port, connections=1)) as transport:
        results = [transport.send(SENDER, f"m{i}@example.org", MESSAGE) for i in range(20)]

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert len(handler.envelopes) == 20
    assert handler.sessions == 1


def test_three_threads_sending_thirty_messages_open_at_most_three_sessions(start_server):
    handler = RecordingHandler()
    port = start_server(handler)
    results: list[SendResult] = []
    lock = threading.Lock()

    with Transport(settings(port, connections=3)) as transport:

        def worker(first: int) -> None:
            for i in range(first, first + 10):
                result = transport.send(SENDER, f"m{i}@example.org", MESSAGE)
                with lock:
                    results.append(result)

        threads = [threading.Thread(target=worker, args=(n * 10,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(results) == 30
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert sorted(e.rcpt_tos[0] for e in handler.envelopes) == sorted(
        f"m{i}@example.org" for i in range(30)
    )
    assert 1 <= handler.sessions <= 3


def test_more_threads_than_connections_wait_for_a_free_connection(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    with Transport(settings(port, connections=2)) as transport:
        threads = [
            threading.Thread(target=transport.send, args=(SENDER, f"m{i}@example.org", MESSAGE))
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(handler.envelopes) == 6
    assert handler.sessions <= 2


def test_connection_the_server_closed_while_idle_is_replaced_without_losing_a_message(
    start_server,
):
    handler = RecordingHandler()
    port = start_server(handler, timeout=0.3)  # the server hangs up after 0.3 s idle

    with Transport(settings(port)) as transport:
        first = transport.send(SENDER, "a@example.org", MESSAGE)
        idle = transport._idle[0]
        deadline = time.monotonic() + 10
        while not _peer_hung_up(idle):  # the server's idle timeout has run out
            assert time.monotonic() < deadline, "the server never hung up"
            time.sleep(0.02)
        second = transport.send(SENDER, "b@example.org", MESSAGE)

    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.SENT)
    assert handler.sessions == 2


def test_send_after_close_opens_a_fresh_connection(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    with Transport(settings(port)) as transport:
        assert transport.send(SENDER, "a@example.org", MESSAGE).outcome is Outcome.SENT
        transport.close()
        assert transport.send(SENDER, "b@example.org", MESSAGE).outcome is Outcome.SENT

    assert handler.sessions == 2


# -- refusals ----------------------------------------------------------------------------------


def test_temporary_refusal_at_rcpt_is_retry_with_its_code(start_server):
    port = start_server(
        RecordingHandler(
            rcpt_replies={
                "busy@example.org": "451 4.3.0 mailbox busy, try later",
            }
        )
    )

    result = send_one(port, "busy@example.org")

    assert result.outcome is Outcome.RETRY
    assert result.code == 451
    assert result.detail == "451 4.3.0 mailbox busy, try later"


def test_permanent_refusal_at_rcpt_is_failed_with_code_and_detail(start_server):
    port = start_server(
        RecordingHandler(
            rcpt_replies={
                "gone@example.org": "550 5.1.1 <gone@example.org>: user unknown",
            }
        )
    )

    result = send_one(port, "gone@example.org")

    assert result.outcome is Outcome.FAILED
    assert result.code == 550
    assert result.detail == "550 5.1.1 <gone@example.org>: user unknown"
    assert result.policy_rejection is False


def test_policy_refusal_at_data_is_failed_and_marked_as_policy_rejection(start_server):
    port = start_server(
        RecordingHandler(
            data_replies={
                "strict@example.org": "554 5.7.26 Unauthenticated email is not accepted (DMARC)",
            }
        )
    )

    result = send_one(port, "strict@example.org")

    assert result.outcome is Outcome.FAILED
    assert result.code == 554
    assert result.detail.startswith("554 5.7.26 ")
    assert result.policy_rejection is True


def test_temporary_refusal_at_data_is_retry(start_server):
    port = start_server(
        RecordingHandler(
            data_replies={
                "greylisted@example.org": "450 4.7.1 greylisted, come back later",
            }
        )
    )

    result = send_one(port, "greylisted@example.org")

    assert (result.outcome, result.code) == (Outcome.RETRY, 450)
    assert result.policy_rejection is False  # only permanent 5.7.x counts


def test_a_refused_envelope_sender_is_held_as_our_fault_not_the_members(start_server):
    reply = "553 5.7.1 <noreply@wg.test>: Sender address rejected: not owned by user"
    port = start_server(RecordingHandler(mail_reply=reply))

    result = send_one(port)

    assert result.outcome is Outcome.HELD
    assert "envelope sender" in result.detail and "not owned by user" in result.detail


def test_a_sender_refused_at_rcpt_as_postfix_does_is_held_as_our_fault(start_server):
    reply = "553 5.7.1 <noreply@wg.test>: Sender address rejected: not owned by user mailer"
    port = start_server(RecordingHandler(rcpt_replies={"member@example.org": reply}))

    result = send_one(port)

    assert result.outcome is Outcome.HELD and result.fault == "sender"


def test_a_message_too_big_for_the_relay_fails_that_message(start_server):
    port = start_server(RecordingHandler(mail_reply="552 5.3.4 Message size exceeds limit"))

    assert send_one(port).outcome is Outcome.FAILED


def test_relay_access_denied_at_rcpt_is_held_as_our_fault(start_server):
    handler = RecordingHandler(
        rcpt_replies={"member@example.org": "554 5.7.1 <member@example.org>: Relay access denied"}
    )
    port = start_server(handler)

    assert send_one(port).outcome is Outcome.HELD


def test_connection_is_reused_after_refusals(start_server):
    handler = RecordingHandler(
        rcpt_replies={
            "gone@example.org": "550 5.1.1 user unknown",
            "busy@example.org": "451 4.3.0 try later",
        },
        data_replies={"strict@example.org": "554 5.7.1 rejected by policy"},
    )
    port = start_server(handler)

    with Transport(settings(port)) as transport:
        outcomes = [
            transport.send(SENDER, recipient, MESSAGE).outcome
            for recipient in [
                "gone@example.org",
                "busy@example.org",
                "strict@example.org",
                "ok@example.org",
            ]
        ]

    assert outcomes == [Outcome.FAILED, Outcome.RETRY, Outcome.FAILED, Outcome.SENT]
    assert [e.rcpt_tos for e in handler.envelopes] == [["ok@example.org"]]
    assert handler.sessions == 1


@pytest.mark.parametrize(
    ("detail", "code", "expected"),
    [
        ("554 5.7.26 DMARC", 554, True),
        ("550-5.7.1 first line 550 5.7.1 second line", 550, True),
        ("550 5.1.1 user unknown", 550, False),
        ("550 no enhanced code", 550, False),
        ("451 4.7.1 greylisted", 451, False),
        ("connection dropped: 5.7.1", None, False),
    ],
)
def test_policy_rejection_only_for_permanent_5_7_enhanced_codes(detail, code, expected):
    outcome = Outcome.FAILED if code and code >= 500 else Outcome.RETRY
    assert SendResult(outcome, code, detail).policy_rejection is expected


# -- broken connections ----------------------------------------------------------------------


def test_connection_dropped_during_data_is_retry_and_next_send_uses_a_new_connection(
    start_server,
):
    handler = RecordingHandler(drop_data={"flaky@example.org"})
    port = start_server(handler)

    with Transport(settings(port)) as transport:
        dropped = transport.send(SENDER, "flaky@example.org", MESSAGE)
        retried = transport.send(SENDER, "flaky@example.org", MESSAGE)

    assert dropped.outcome is Outcome.RETRY
    assert dropped.code is None
    assert "connection dropped" in dropped.detail
    assert retried.outcome is Outcome.SENT
    assert handler.envelopes[0].original_content == MESSAGE
    assert handler.sessions == 2


def test_nothing_listening_is_held_not_an_exception():
    result = send_one(free_port(), timeout=2.0)

    assert result.outcome is Outcome.HELD
    assert result.code is None
    assert "cannot connect" in result.detail


# -- TLS -----------------------------------------------------------------------------------------


def test_starttls_with_a_trusted_certificate_delivers(start_server, server_tls, cafile):
    handler = RecordingHandler()
    port = start_server(handler, tls_context=server_tls, require_starttls=True)

    result = send_one(port, security=Security.STARTTLS, cafile=cafile)

    assert result.outcome is Outcome.SENT
    assert handler.envelopes[0].original_content == MESSAGE


def test_starttls_with_an_untrusted_certificate_is_held_mentioning_the_certificate(
    start_server, server_tls
):
    handler = RecordingHandler()
    port = start_server(handler, tls_context=server_tls, require_starttls=True)

    result = send_one(port, security=Security.STARTTLS)  # test CA not trusted

    assert result.outcome is Outcome.HELD
    assert "certificate" in result.detail
    assert handler.envelopes == []


def test_starttls_required_but_not_offered_is_held_saying_so(start_server, cafile):
    handler = RecordingHandler()
    port = start_server(handler)  # plain server without STARTTLS

    result = send_one(port, security="starttls", cafile=cafile)

    assert result.outcome is Outcome.HELD
    assert "STARTTLS is not offered" in result.detail
    assert handler.envelopes == []


def test_implicit_tls_delivers(start_server, server_tls, cafile):
    handler = RecordingHandler()
    port = start_server(handler, ssl_context=server_tls)

    result = send_one(port, security=Security.SSL, cafile=cafile)

    assert result.outcome is Outcome.SENT
    assert handler.envelopes[0].original_content == MESSAGE


def test_implicit_tls_with_an_untrusted_certificate_is_held(start_server, server_tls):
    port = start_server(RecordingHandler(), ssl_context=server_tls)

    result = send_one(port, security=Security.SSL)

    assert result.outcome is Outcome.HELD
    assert "certificate" in result.detail


# -- login ---------------------------------------------------------------------------------------


LOGIN_ATTEMPTS: list[str] = []


def _authenticator(server, session, envelope, mechanism, auth_data):
    LOGIN_ATTEMPTS.append(mechanism)
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"wg-mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends 235 / 535


@pytest.fixture
def auth_port(start_server, server_tls) -> tuple[int, RecordingHandler]:
    handler = RecordingHandler()
    port = start_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    return port, handler


def test_login_with_the_right_password_delivers(auth_port, cafile):
    port, handler = auth_port

    result = send_one(
        port, security=Security.STARTTLS, cafile=cafile, username="wg-mailer", password="s3cret"
    )

    assert result.outcome is Outcome.SENT
    assert len(handler.envelopes) == 1


def test_login_with_a_wrong_password_is_held_saying_authentication_failed(auth_port, cafile):
    port, handler = auth_port

    result = send_one(
        port, security=Security.STARTTLS, cafile=cafile, username="wg-mailer", password="wrong"
    )

    assert result.outcome is Outcome.HELD
    assert result.code == 535
    assert "authentication failed" in result.detail
    assert handler.envelopes == []


def test_a_refused_login_is_tried_with_one_mechanism_once(auth_port, cafile):
    port, _handler = auth_port
    LOGIN_ATTEMPTS.clear()

    send_one(port, security=Security.STARTTLS, cafile=cafile, username="wg-mailer", password="x")

    # aiosmtpd offers LOGIN and PLAIN; smtplib's login() would try both, two failures a go.
    assert len(LOGIN_ATTEMPTS) == 1


def test_check_logs_in_and_quits_without_sending(auth_port, cafile):
    port, handler = auth_port
    good = settings(port, security=Security.STARTTLS, cafile=cafile, username="wg-mailer")

    with Transport(SmtpSettings(**{**good.__dict__, "password": "s3cret"})) as transport:
        working = transport.check()
    with Transport(SmtpSettings(**{**good.__dict__, "password": "wrong"})) as transport:
        broken = transport.check()

    assert working.outcome is Outcome.SENT
    assert broken.outcome is Outcome.HELD and "authentication failed" in broken.detail
    assert handler.envelopes == []


def test_a_ca_file_is_trusted_besides_the_system_store(cafile):
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]

    with_extra = tls_context(cafile).cert_store_stats()["x509_ca"]

    assert with_extra == system + 1


def test_password_is_not_shown_in_settings_repr():
    assert "s3cret" not in repr(SmtpSettings(host="h", username="u", password="s3cret"))


# -- rate limit ----------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_lets_the_first_through_and_makes_the_next_wait_one_second():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, sleep=clock.sleep)

    limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]


def test_rate_limiter_refills_up_to_the_burst_after_a_pause():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    clock.now += 60  # a long pause refills only up to the burst, not 60 tokens
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]


def test_rate_limiter_queues_concurrent_callers_one_interval_apart():
    clock = FakeClock()
    waits: list[float] = []
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, sleep=waits.append)

    threads = [threading.Thread(target=limiter.acquire) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Clock frozen and sleeps not advancing it: the callers reserved slots 1, 2 and 3 s ahead.
    assert sorted(waits) == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]


def test_transport_with_a_rate_limit_spaces_out_messages(start_server):
    handler = RecordingHandler()
    port = start_server(handler)

    with Transport(settings(port, rate_per_minute=600, connections=1)) as transport:
        started = time.monotonic()
        for i in range(3):
            assert transport.send(SENDER, f"m{i}@example.org", MESSAGE).outcome is Outcome.SENT
        elapsed = time.monotonic() - started

    assert elapsed >= 0.19  # 600/min with a burst of 1: two waits of 0.1 s
    assert len(handler.envelopes) == 3


# -- PIPELINING (RFC 2920) -----------------------------------------------------------------------


def test_a_pipelining_server_gets_the_message_byte_for_byte_with_dots_stuffed(start_server):
    handler = RecordingHandler(pipelining=True)
    port = start_server(handler)
    dotted = MESSAGE.replace(b"\r\n\r\n", b"\r\n\r\n.leading dot\r\n..two\r\n", 1)

    with Transport(settings(port)) as transport:
        results = [transport.send(SENDER, "member@example.org", m) for m in (MESSAGE, dotted)]

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [e.original_content for e in handler.envelopes] == [MESSAGE, dotted]
    assert handler.envelopes[0].mail_from == SENDER
    assert handler.sessions == 1


def test_a_pipelining_server_refusing_each_step_is_read_as_the_same_outcomes(start_server):
    handler = RecordingHandler(
        pipelining=True,
        rcpt_replies={
            "gone@example.org": "550 5.1.1 user unknown",
            "busy@example.org": "451 4.3.0 try later",
            "relay@example.org": "554 5.7.1 <relay@example.org>: Relay access denied",
        },
        data_replies={"strict@example.org": "554 5.7.1 rejected by policy"},
    )
    port = start_server(handler)
    recipients = [
        "gone@example.org",
        "busy@example.org",
        "relay@example.org",
        "strict@example.org",
        "ok@example.org",
    ]

    with Transport(settings(port)) as transport:
        outcomes = [transport.send(SENDER, r, MESSAGE).outcome for r in recipients]

    assert outcomes == [
        Outcome.FAILED,
        Outcome.RETRY,
        Outcome.HELD,
        Outcome.FAILED,
        Outcome.SENT,
    ]
    assert [e.rcpt_tos for e in handler.envelopes] == [["ok@example.org"]]
    assert handler.sessions == 1


def test_a_pipelining_server_refusing_the_sender_holds_the_mail(start_server):
    port = start_server(RecordingHandler(pipelining=True, mail_reply=(
        "553 5.7.1 <list@wg.example>: Sender address rejected: not owned by user")))

    result = send_one(port)

    assert result.outcome is Outcome.HELD and result.fault == "sender"
