#!/usr/bin/env bash
# `make demo`: the main job on the bundled sample, then the log audits and replays itself.
set -euo pipefail
cd "$(dirname "$0")/.."
TAPE=.venv/bin/tape
export TAPE_LOG="${TAPE_LOG:-tape.db}"

echo "== backtest: SMA 5/20 on AAPL 2000-2013 (bundled sample, split-adjusted), default risk and costs"
$TAPE backtest AAPL --strategy sma_cross --param short=5 --param long=20
RUN=$($TAPE runs --json | tail -n 1 | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')

echo
echo "== verify: recompute the hash chain of $TAPE_LOG"
$TAPE verify

echo
echo "== replay: the same summary, folded from the log alone"
$TAPE replay "$RUN" --json | .venv/bin/python -c '
import json, sys
r = json.load(sys.stdin)
run, trades, pnl, ret = r["run_id"], r["total_trades"], r["total_pnl"], r["return_pct"]
print(f"replayed {run} from the log alone: {trades} trades, net P&L {pnl:,.2f}, return {ret} %")'

echo
echo "== re-run: the recorded inputs through the deciders again, decision by decision"
$TAPE replay "$RUN" --rerun

echo
echo "== explain: the events behind trade 1"
$TAPE explain "$RUN" --trade 1
