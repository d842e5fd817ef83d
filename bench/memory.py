"""Figure 3: the sender's peak resident memory for a large send against a ten times smaller one.

The queue is filled by the parent; a fresh child process only sends, and reports its own peak
resident set (VmHWM), so imports and the app count the same in both and the difference is
what the sender holds while it streams through the queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.common import add_members, announce, fresh_database, log, make_app


def child(database_url: str, port: int, instance: str) -> None:
    """Run in the child: send everything queued, print the peak resident memory in KiB."""
    import resource

    from bench.common import NOW, Database, make_app
    from emails.transport import Transport
    from service.config import settings
    from service.outbox import OutboxSender

    app = make_app(Database("", database_url), port, Path(instance), WG_SMTP_CONNECTIONS="4")
    with Transport(settings(app).smtp()) as transport:
        report = OutboxSender(app, transport, now=lambda: NOW).run_once()
    peak = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    peak = peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"sent": report.sent, "peak_kib": peak}))


def peak_for(kind: str, members: int, port: int, workdir: Path) -> dict:
    with fresh_database(kind, workdir) as database:
        app = make_app(database, port, workdir)
        add_members(app, members)
        queued = announce(app)
        from service.db import get_database

        get_database(app).engine.dispose()
        output = subprocess.run(
            [sys.executable, "-m", "bench.memory", database.url, str(port), str(workdir)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if result["sent"] != queued:
        raise RuntimeError(f"the child sent {result['sent']} of {queued}")
    log(f"memory {kind}: {members} messages, peak {result['peak_kib'] / 1024:.1f} MiB")
    return result


def run(kind: str, small: int, large: int, port: int, workdir: Path) -> dict:
    return {
        "small": peak_for(kind, small, port, workdir),
        "large": peak_for(kind, large, port, workdir),
    }


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), sys.argv[3])
