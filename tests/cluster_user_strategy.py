"""Run by tests/test_user_strategies.py in its own process: a user's strategy file is loaded by the
driver, then deleted, then a sweep runs on a 2-node Ray cluster. Workers can only have the code the
tasks carry. Prints the ranked parameters and their metrics as JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray
from ray.cluster_utils import Cluster

from tape.actors.validation import optimize
from tape.events.backtest import BacktestConfig
from tape.store.market import load_many
from tape.store.strategy_loader import resolve


def main(strategy_file: str, log_path: str) -> int:
    spec = resolve(strategy_file)
    Path(strategy_file).unlink()  # from here on the file exists nowhere
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        base = BacktestConfig(symbols=["AAPL"], strategy=spec, start="2008-01-01", end="2010-12-31")
        series = load_many(base.symbols, start=base.start, end=base.end)
        result = optimize(
            base,
            series,
            [{"window": w} for w in (10, 20, 30, 40)],
            objective="sharpe",
            log_path=Path(log_path),
            address=cluster.address,
        )
        ranked = [{"params": r.params, "metrics": r.metrics} for r in result.ranked]
        print(json.dumps({"nodes": len(nodes), "ranked": ranked}))
    finally:
        ray.shutdown()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
