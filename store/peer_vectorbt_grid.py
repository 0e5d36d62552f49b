"""The vectorbt side of `tape bench sweep --peers`: an SMA grid over sp500_20, shared cash.

Run as a whole process by the bench (never imported by tape): it reads the bundled dataset's CSV as
a vectorbt user does, computes every (short, long) pair's moving averages with ``vbt.MA.run``, and
simulates each pair as one 20-symbol portfolio with ``Portfolio.from_signals(cash_sharing=True)``;
it prints the best pair by Sharpe ratio.
Usage: python peer_vectorbt_grid.py sp500_20_daily.csv.gz SHORT,SHORT,... LONG,LONG,...
"""

import itertools
import sys

import pandas as pd
import vectorbt as vbt

if __name__ == "__main__":
    close = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
    shorts = [int(v) for v in sys.argv[2].split(",")]
    longs = [int(v) for v in sys.argv[3].split(",")]
    pairs = list(itertools.product(shorts, longs))
    fast = vbt.MA.run(close, [s for s, _ in pairs], short_name="fast")
    slow = vbt.MA.run(close, [lg for _, lg in pairs], short_name="slow")
    entries = fast.ma_crossed_above(slow)
    exits = fast.ma_crossed_below(slow)
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        size=0.05,
        size_type="percent",
        init_cash=100_000.0,
        fees=0.0005,
        group_by=["fast_window", "slow_window"],
        cash_sharing=True,
        freq="1D",
    )
    sharpe = portfolio.sharpe_ratio()
    print(len(sharpe), sharpe.idxmax())
