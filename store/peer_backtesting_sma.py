"""The backtesting.py side of `tape bench backtest --peers`: SMA 5/20 cross, 10 shares, no costs.

Run as a whole process by the bench (never imported by tape): it reads the bench's CSV as a
backtesting.py user does, runs the cross long-only (buy 10 on the cross up, close on the cross down,
filled at the next bar's open as tape fills) and prints the trade count.
Usage: python peer_backtesting_sma.py BARS.csv
"""

import sys

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover


def sma(values, n):  # type: ignore[no-untyped-def]
    """Simple moving average, as backtesting.py's examples compute it."""
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    """Long 10 shares while the 5-bar average is above the 20-bar one."""

    short = 5
    long = 20

    def init(self):  # type: ignore[no-untyped-def]
        self.fast = self.I(sma, self.data.Close, self.short)
        self.slow = self.I(sma, self.data.Close, self.long)

    def next(self):  # type: ignore[no-untyped-def]
        if crossover(self.fast, self.slow) and not self.position:
            self.buy(size=10)
        elif crossover(self.slow, self.fast) and self.position:
            self.position.close()


if __name__ == "__main__":
    bars = pd.read_csv(sys.argv[1], index_col=0, parse_dates=True)
    bars.columns = [c.capitalize() for c in bars.columns]
    stats = Backtest(bars, SmaCross, cash=10_000_000, commission=0.0, finalize_trades=True).run()
    print(stats["# Trades"])
