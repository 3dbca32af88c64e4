"""A support-ticket router: liftlab picks the arm of each ticket, the router runs it, then reports what happened.

Start liftlab with its example experiments (from the repository's root), then run this
against it:

    cargo run --release -- demo
    python clients/python/examples/router.py --tickets 50

Options: ``--url`` (default ``$LIFTLAB_URL`` or http://127.0.0.1:8080), ``--key`` (default
``$LIFTLAB_KEY``; the demo needs none), ``--tickets``, ``--seed``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import uuid
from collections import Counter
from typing import Any, Dict, Tuple

from liftlab_client import Client, HandledBy

EXPERIMENT = "support-triage-ai-assist"


def new_ticket(run: str, i: int, rng: random.Random) -> Dict[str, Any]:
    """A ticket as the helpdesk hands it to the router."""
    return {
        "id": f"ticket-{run}-{i}",
        "region": rng.choice(["emea", "amer", "amer", "apac"]),
        "channel": rng.choice(["email", "chat"]),
        "priority": rng.choice(["p1", "p2", "p3"]),
        "estimated_minutes": rng.randint(10, 90),
    }


def handle(ticket: Dict[str, Any], arm: str, rng: random.Random) -> Tuple[Dict[str, Any], HandledBy]:
    """Stands in for the real work: the human queue, or an agent reviewing an AI draft."""
    minutes = ticket["estimated_minutes"] * rng.uniform(0.7, 1.4)
    if arm == "ai-assist":
        minutes *= 0.85
        cost = minutes / 60 * 38.5 + 0.40  # agent time plus inference
        return {
            "cycle_time_minutes": round(minutes, 1),
            "escalated": rng.random() < 0.08,
            "csat_good": rng.random() < 0.82,
            "cost_per_case": round(cost, 2),
        }, "hybrid"
    return {
        "cycle_time_minutes": round(minutes, 1),
        "escalated": rng.random() < 0.09,
        "csat_good": rng.random() < 0.80,
        "cost_per_case": round(minutes / 60 * 38.5, 2),
    }, "human"


def pct(x: Any) -> str:
    return f"{x:+.1%}" if isinstance(x, (int, float)) else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("LIFTLAB_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--key", default=os.environ.get("LIFTLAB_KEY"))
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    rng = random.Random(args.seed)
    run = uuid.uuid4().hex[:8]  # fresh ticket ids each run: assignments are sticky
    served: "Counter[str]" = Counter()
    recorded = fallbacks = 0
    with Client(args.url, api_key=args.key) as liftlab:
        for i in range(args.tickets):
            ticket = new_ticket(run, i, rng)
            # 1. Ask which arm handles the ticket. If liftlab is down, `human` is served
            #    (fallback=True) and the ticket is handled as before the experiment.
            assignment = liftlab.assign(
                EXPERIMENT,
                ticket["id"],
                attributes={k: ticket[k] for k in ("region", "channel", "priority", "estimated_minutes")},
                default_arm="human",
            )
            served[assignment.arm] += 1
            fallbacks += assignment.fallback
            # 2. Do the work on that arm.
            metrics, handled_by = handle(ticket, assignment.arm, rng)
            # 3. Report what happened. Only tickets in the experiment are counted; the event id
            #    is derived from the content, so a retried report is never counted twice.
            if assignment.in_experiment:
                liftlab.record(
                    EXPERIMENT,
                    ticket["id"],
                    metrics,
                    handled_by=handled_by,
                    model_version="drafter-2026-02" if handled_by == "hybrid" else None,
                )
                recorded += 1
        results = liftlab.results(EXPERIMENT)

    print(f"{args.tickets} tickets: served {dict(served)}, {recorded} outcomes recorded, {fallbacks} fallbacks")
    print(f"{EXPERIMENT} (version {results['version']}, {results['status']}):")
    for metric in results["metrics"]:
        for c in metric["comparisons"]:
            d = c.get("decision") or {}  # none while collecting
            print(
                f"  {metric['key']:<20} {c['arm']} vs {c['baseline']}: {c['verdict']:<12} "
                f"lift {pct(d.get('estimate'))} [{pct(d.get('ci_low'))}, {pct(d.get('ci_high'))}]"
            )


if __name__ == "__main__":
    main()
