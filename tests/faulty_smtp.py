"""An SMTP server that misbehaves on purpose: slow, refusing, dropping, stalling or down.

It records a message only at the moment it answers 250, which is when a real server takes
responsibility for it, so duplicates counted here are exactly the duplicates a member sees.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.mail import ReceivedMail, free_port

TEMPORARY_FAILURE = "451 4.3.0 Temporary local problem, try again later"


@dataclass
class Faults:
    """What the server does wrong; every fault is deterministic."""

    delay: float = 0.0  # seconds before answering each DATA
    temporary_failure_every: int = 0  # every Nth DATA (not counting drops) gets a 451
    drop_once: frozenset[str] = frozenset()  # recipients whose first DATA loses the connection
    refuse: dict[str, str] = field(default_factory=dict)  # RCPT TO address -> reply
    stall_at: int = 0  # the Nth DATA waits `stall_seconds` before its answer
    stall_seconds: float = 0.0
    hold_until_sessions: int = 0  # DATA waits until this many sessions have sent RCPT
    refuse_sender: str = ""  # the reply to every MAIL FROM, when set


class _Handler:
    def __init__(self, server: FaultySmtp) -> None:
        self.server = server

    async def handle_MAIL(self, server, session, envelope, address, options) -> str:  # type: ignore[no-untyped-def]
        if self.server.faults.refuse_sender:
            return self.server.faults.refuse_sender
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:  # type: ignore[no-untyped-def]
        owner = self.server
        with owner.lock:
            owner.sessions.add(id(session))
            reply = owner.faults.refuse.get(address)
            if reply is not None:
                owner.refusals[address] += 1
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        owner, faults = self.server, self.server.faults
        recipient = envelope.rcpt_tos[0]
        with owner.lock:
            drop = recipient in faults.drop_once and recipient not in owner.dropped
            if drop:
                owner.dropped.add(recipient)
            else:
                owner.data_count += 1
            number = owner.data_count
        if drop:
            # Gone before any answer: the server never accepted this message. abort() (not
            # close()) discards whatever the protocol writes afterwards, so no 250 escapes.
            server.transport.abort()
            return "421 4.4.2 connection lost"
        if faults.hold_until_sessions:
            deadline = time.monotonic() + 15
            while len(owner.sessions) < faults.hold_until_sessions:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
        if number == faults.stall_at:
            owner.stalled.set()
            await asyncio.sleep(faults.stall_seconds)
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.temporary_failure_every and number % faults.temporary_failure_every == 0:
            with owner.lock:
                owner.temporary_failures += 1
            return TEMPORARY_FAILURE
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        with owner.lock:
            owner.received.append(mail)
        return "250 OK"


class FaultySmtp:
    """A test SMTP server on a fixed loopback port that can be stopped and started again."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.port = free_port()
        self.lock = threading.Lock()
        self.received: list[ReceivedMail] = []
        self.sessions: set[int] = set()
        self.dropped: set[str] = set()
        self.refusals: Counter[str] = Counter()
        self.data_count = 0
        self.temporary_failures = 0
        self.stalled = threading.Event()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Listen (again) on the same port."""
        assert self._controller is None, "already running"
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Go down: stop listening and cut every open connection."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FaultySmtp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.received)

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def message_ids(self) -> Counter[str]:
        """How often each Message-ID arrived."""
        return Counter(mail["Message-ID"] for mail in self.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> int:
        """Wait until at least `count` messages arrived; how many there are then."""
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.count()
