"""The join form answers in the same time whether or not the address is known.

    python -m bench.join_timing [--rounds N] [--only sqlite|postgresql]

Posts the join form through the app (Flask's test client, the whole request: CSRF, rate
limit, operation, commit) for addresses that are unknown, active members, and waiting for
confirmation, interleaved in one run, and prints each kind's median and its ratio to the
unknown addresses' median. A ratio near 1.0 means the timing tells nothing; the issue
measured 11.6 ms (known) against 15.8 ms (unknown), a ratio of 0.73, before the change.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from bench.common import (
    add_members,
    free_port,
    fresh_database,
    log,
    make_app,
    postgres_available,
    scaled,
    workdir,
)

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KINDS = ("unknown", "member", "unconfirmed")


def form(email: str, token: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "organisation_name": "Riverbank Survivors Network",
        "kind": "organisation",
        "website": "https://riverbank.example",
        "represented_in_cambodia": "yes",
        "cambodia_location": "Battambang",
        "name": "Amara Sok",
        "role": "Programme officer",
        "email": email,
        "phone": "+855 12 345 678",
        "language": "en",
        "representatives-0-name": "Dara Chan",
        "representatives-0-email": "dara@riverbank.example",
        "work_summary": "Psychosocial support groups for elderly survivors.",
        "consent": "y",
    }


def run(kind: str, rounds: int) -> dict[str, float]:
    """Median milliseconds of a join submission per kind of address, on database `kind`."""
    with workdir() as where, fresh_database(kind, where) as database:
        # Nothing is delivered here: the outbox rows are what the request writes.
        app = make_app(database, free_port(), where)
        add_members(app, rounds)
        client = app.test_client()
        page = client.get("/join").get_data(as_text=True)
        match = CSRF.search(page)
        assert match, "no CSRF token on /join"
        token = match.group(1)

        def submit(email: str) -> float:
            start = time.perf_counter()
            answer = client.post("/join", data=form(email, token))
            elapsed = time.perf_counter() - start
            assert answer.status_code == 302, (email, answer.status_code)
            return elapsed

        for n in range(rounds):  # addresses waiting for confirmation: one earlier request each
            submit(f"waiting{n}@elsewhere.example")
        for n in range(20):  # warm-up: caches, connection pool, compiled statements
            submit(f"warmup{n}@elsewhere.example")
        times: dict[str, list[float]] = {k: [] for k in KINDS}
        for n in range(rounds):  # interleaved, so drift of the machine hits every kind alike
            order = KINDS[n % 3 :] + KINDS[: n % 3]
            for what in order:
                email = {
                    "unknown": f"new{n}@elsewhere.example",
                    "member": f"member{n}@org{n // 10}.example.org",
                    "unconfirmed": f"waiting{n}@elsewhere.example",
                }[what]
                times[what].append(submit(email))
        return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=scaled(300))
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    if args.only:
        kinds = [args.only]
    print(f"{'database':<12}{'address':<13}{'median ms':>10}{'ratio to unknown':>18}")
    for kind in kinds:
        log(f"{kind}: {args.rounds} rounds of {len(KINDS)} submissions")
        medians = run(kind, args.rounds)
        for what in KINDS:
            ratio = medians[what] / medians["unknown"]
            print(f"{kind:<12}{what:<13}{medians[what]:>10.2f}{ratio:>18.3f}")


if __name__ == "__main__":
    main()
