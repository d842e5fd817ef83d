"""`make bench`: every figure, one table, and bench/results.json.

    python -m bench.run [--large] [--only delivery,enqueue,memory,tick,web]

BENCH_QUICK=1 runs every figure at a tenth of its size. Each figure is compared with a
baseline measured in the same run on the same machine; docs/performance.md explains them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import QUICK, log, postgres_available, scaled, smtp_sink, workdir

RESULTS = Path(__file__).parent / "results.json"
FIGURES = ("delivery", "enqueue", "memory", "tick", "web", "startup", "join")


def figure(
    name: str,
    value: float,
    unit: str,
    baseline: float,
    target: str,
    met: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    ratio = value / baseline if baseline else math.nan
    return {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": round(baseline, 4),
        "ratio": round(ratio, 4),
        "target": target,
        "met": met,
        **extra,
    }


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = int(line.split()[1]) // 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_mib": memory,
        "python": platform.python_version(),
        "load_before": os.getloadavg()[0],
    }


# (sender processes, SMTP connections each): 4 connections in all but for the first row, so
# each row compares with plain smtplib over the same number of connections.
SENDER_SHAPES = ((1, 1), (1, 4), (2, 2), (4, 1))


def delivery_figures(port: int, where: Path, large: bool) -> list[dict[str, Any]]:
    from bench import delivery

    members = scaled(100_000 if large else 20_000)
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    out = []
    for kind in kinds:
        for senders, connections in SENDER_SHAPES:
            result = delivery.run(  # one run each at 100,000: the sizes speak for themselves
                kind, members, connections, port, where, repeats=1 if large else 3, senders=senders
            )
            ratio = result["rate"] / result["baseline"]
            out.append(
                figure(
                    f"delivery_{kind}_{senders}x{connections}",
                    result["rate"],
                    "messages/s",
                    result["baseline"],
                    f"ratio >= 0.6 (baseline: plain smtplib over {senders * connections} "
                    "connections, prebuilt messages of the same size)",
                    ratio >= 0.6,
                    senders=senders,
                    connections=connections,
                    messages=result["sent"],
                    message_bytes=result["size"],
                )
            )
    return out


def startup_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import startup

    result = startup.run(where)
    return [
        figure(
            f"startup_{name}",
            result[name],
            "s",
            result["python"],
            "under 0.5 s (baseline: the interpreter starting and doing nothing)",
            result[name] < 0.5,
        )
        for name in ("help", "tick")
    ]


def join_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import join_timing

    kinds = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    out = []
    for kind in kinds:
        medians = join_timing.run(kind, scaled(300))
        for known in ("member", "unconfirmed"):
            ratio = medians[known] / medians["unknown"]
            out.append(
                figure(
                    f"join_{known}_{kind}",
                    medians[known],
                    "ms",
                    medians["unknown"],
                    "ratio within 0.9..1.1 (baseline: the join form for an unknown address)",
                    0.9 <= ratio <= 1.1,
                )
            )
    return out


def enqueue_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import enqueue

    members = scaled(100_000)
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    out = []
    for kind in kinds:
        result = enqueue.run(kind, members, port, where)
        out.append(
            figure(
                f"enqueue_{kind}",
                result["time"],
                "s",
                result["baseline"],
                "ratio <= 3 (baseline: bare executemany INSERT of the same rows)",
                result["time"] <= 3 * result["baseline"],
                rows=members,
                how=result["how"],
            )
        )
        out.append(
            figure(
                f"announce_whole_{kind}",
                result["announce"],
                "s",
                result["baseline"],
                "none: the whole `announce` (members, tokens, rows), for the record",
                None,
                rows=members,
            )
        )
    return out


def memory_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import memory

    small, large = scaled(10_000), scaled(100_000)
    result = memory.run("sqlite", small, large, port, where)
    small_mib = result["small"]["peak_kib"] / 1024
    large_mib = result["large"]["peak_kib"] / 1024
    return [
        figure(
            "memory_sender_peak",
            large_mib,
            "MiB",
            small_mib,
            f"ratio <= 1.25 and value < 200 (baseline: the same sender for {small} messages)",
            large_mib <= 1.25 * small_mib and large_mib < 200,
            messages=large,
        )
    ]


def tick_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import tick

    small, large = scaled(10_000), scaled(100_000)
    # Where the invitation tick spends its time, from a separate run: the profiler's own
    # cost must not count in the figures.
    profiled = tick.run("sqlite", min(small, 2_000), port, where, profile=True)
    (Path(__file__).parent / "tick_profile.txt").write_text(profiled["profile"])
    first = tick.run("sqlite", small, port, where)
    second = tick.run("sqlite", large, port, where)
    return [
        figure(
            "tick_nothing_due",
            first["idle"],
            "s",
            first["invite"],
            f"ratio < 0.05 (baseline: the tick that queues one meeting's {small} invitations)",
            first["idle"] < 0.05 * first["invite"],
            members=small,
        ),
        figure(
            "tick_invitations_scale",
            second["invite"],
            "s",
            first["invite"],
            f"ratio <= 12 (invitation tick at {large} members against {small})",
            second["invite"] <= 12 * first["invite"],
            members=large,
        ),
        figure(
            "tick_nothing_due_scale",
            second["idle"],
            "s",
            first["idle"],
            f"ratio <= 12 (tick with nothing due at {large} members against {small})",
            second["idle"] <= 12 * first["idle"],
            members=large,
        ),
    ]


def web_figures(port: int, where: Path) -> list[dict[str, Any]]:
    from bench import web

    seconds = 3 if QUICK else 10
    results = web.run(port, where, seconds)
    healthz = results["healthz"]
    out = [
        figure(
            "web_healthz",
            healthz["rate"],
            "requests/s",
            healthz["rate"],
            "reference for the pages below; zero errors",
            healthz["errors"] == 0,
            p99_ms=healthz["p99_ms"],
            errors=healthz["errors"],
        )
    ]
    for name, least in (("join", 0.5), ("rsvp_get", 0.4), ("rsvp_post", 0.25)):
        result = results[name]
        out.append(
            figure(
                f"web_{name}",
                result["rate"],
                "requests/s",
                healthz["rate"],
                f"ratio >= {least} (baseline: GET /healthz on the same server); zero errors",
                result["rate"] >= least * healthz["rate"] and result["errors"] == 0,
                p99_ms=result["p99_ms"],
                errors=result["errors"],
            )
        )
    return out


def table(figures: list[dict[str, Any]]) -> str:
    head = ("figure", "value", "unit", "baseline", "ratio", "met", "target")
    rows = [head]
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f["met"]]
        rows.append(
            (
                f["name"],
                f"{f['value']:,.3f}" if f["value"] < 100 else f"{f['value']:,.0f}",
                f["unit"],
                f"{f['baseline']:,.3f}" if f["baseline"] < 100 else f"{f['baseline']:,.0f}",
                f"{f['ratio']:.3f}",
                met,
                f["target"],
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head) - 1)]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            str(c).ljust(w) if i in (0, 2) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]))
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="deliver to 100,000, not 20,000")
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    about = machine()
    log(
        f"{'quick (a tenth of the size)' if QUICK else 'full size'}; {about['nproc']} CPUs "
        f"({about['cpu']}), {about['memory_mib']} MiB; PostgreSQL "
        f"{'at ' + common.PG_URL if postgres_available() else 'not reachable: SQLite only'}"
    )
    started = time.monotonic()
    figures: list[dict[str, Any]] = []
    with smtp_sink() as port, workdir() as where:
        for name in chosen:
            step = time.monotonic()
            if name == "delivery":
                figures += delivery_figures(port, where, args.large)
            else:
                figures += globals()[f"{name}_figures"](port, where)
            log(f"{name} took {time.monotonic() - step:.0f}s")
    RESULTS.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(figures))
    print()
    log(f"all figures in {time.monotonic() - started:.0f}s; written to {RESULTS}")


if __name__ == "__main__":
    main()
