"""Run by tests/test_validation.py in its own process: a walk-forward on a 2-node Ray cluster.

Prints the folds as JSON so the test can compare them with a single-process run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray
from ray.cluster_utils import Cluster

from tape.actors.validation import walk_forward
from tape.events.backtest import BacktestConfig
from tape.store.market import load_many

GRID = [{"short": s, "long": lg} for s in (5, 10) for lg in (20, 40)]


def main() -> int:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        base = BacktestConfig(symbols=["AAPL", "MSFT"], start="2003-01-01", end="2010-12-31")
        series = load_many(base.symbols, start=base.start, end=base.end)
        with tempfile.TemporaryDirectory() as tmp:
            result = walk_forward(
                base,
                series,
                GRID,
                objective="sharpe",
                folds=3,
                train=0.6,
                anchored=False,
                log_path=Path(tmp) / "t.db",
                address=cluster.address,
            )
        print(
            json.dumps(
                {"nodes": len(nodes), "folds": [f.__struct_fields__ and _fold(f) for f in result.folds]}
            )
        )
    finally:
        ray.shutdown()
        cluster.shutdown()
    return 0


def _fold(f) -> dict:  # type: ignore[no-untyped-def]
    return {"params": f.params, "train": f.train, "test": f.test}


if __name__ == "__main__":
    sys.exit(main())
