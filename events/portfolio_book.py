"""What a portfolio strategy's run holds: cash in cents, a quantity and cost basis per symbol, and the
orders working until their symbol's next open. Fills here are the backtest's (and the simulated
broker's): market orders at the open, moved by slippage, paying commission, sells before buys."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tape.events.costs import CostModel, cents, notional_cents, part_cents, qty_tolerance
from tape.events.schema import Event, Fill, OrderCancelled, OrderSubmitted, PositionClosed, PositionOpened


@dataclass
class Holding:
    """One symbol held: quantity, what it cost (cents, commissions apart) and when it was opened."""

    qty: float = 0.0
    cost_cents: int = 0
    commission_cents: int = 0
    entry_ts: int = 0
    slippage: float = 0.0  # dollars the buys lost to slippage, not yet closed


@dataclass
class WorkingOrder:
    """An order decided at a close, filling at its symbol's next open."""

    client_order_id: str
    symbol: str
    side: str
    qty: float


@dataclass
class Book:
    """The run's cash and holdings, in the universe's symbol order."""

    symbols: tuple[str, ...]
    strategy: str
    cash_cents: int
    cost: CostModel
    increments: list[float]
    holdings: list[Holding] = field(default_factory=list)
    working: dict[str, WorkingOrder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.holdings = [Holding() for _ in self.symbols]
        self._index = {s: j for j, s in enumerate(self.symbols)}

    @property
    def held(self) -> np.ndarray:
        """Quantity held per symbol."""
        return np.array([h.qty for h in self.holdings])

    def equity(self, last_close: np.ndarray) -> float:
        """Cash plus every holding at its last close, added in symbol order."""
        value = self.cash_cents / 100.0
        for j, holding in enumerate(self.holdings):
            if holding.qty:
                value += holding.qty * float(last_close[j])
        return value

    def submit(self, ts: int, orders: list[WorkingOrder], reason: str) -> list[Event]:
        """Orders to fill at each symbol's next open (replacing any still working for it)."""
        out: list[Event] = []
        for order in orders:
            self.working[order.symbol] = order
            out.append(
                OrderSubmitted(
                    ts=ts,
                    client_order_id=order.client_order_id,
                    intent_id=order.client_order_id,
                    symbol=order.symbol,
                    side=order.side,  # type: ignore[arg-type]
                    qty=order.qty,
                    reason=reason,
                    strategy=self.strategy,
                )
            )
        return out

    def fill_at_open(self, ts: int, opens: np.ndarray, tradable: np.ndarray) -> list[Event]:
        """Fill the working orders of the symbols with a bar now: sells first, then buys, a buy
        shrunk to the cash there is (cancelled when not one unit is affordable)."""
        if not self.working:
            return []
        ready = [o for o in self.working.values() if tradable[self._index[o.symbol]]]
        out: list[Event] = []
        for order in sorted(ready, key=lambda o: (o.side != "sell", self._index[o.symbol])):
            del self.working[order.symbol]
            out += self.fill(ts, order, float(opens[self._index[order.symbol]]))
        return out

    def fill(self, ts: int, order: WorkingOrder, reference: float, reason: str = "rebalance") -> list[Event]:
        """One market order filled at ``reference`` moved by slippage."""
        price = self.cost.market_price(order.side, reference)
        qty = order.qty
        if order.side == "buy":
            qty = self._affordable(self._index[order.symbol], qty, price)
            if qty <= 0:
                return [
                    OrderCancelled(
                        ts=ts, client_order_id=order.client_order_id, symbol=order.symbol, reason="cash"
                    )
                ]
        commission = self.cost.fill_commission(order.symbol, qty, price)
        fill = Fill(
            ts=ts,
            client_order_id=order.client_order_id,
            exec_id=f"{order.client_order_id}-1",
            symbol=order.symbol,
            side=order.side,  # type: ignore[arg-type]
            qty=qty,
            price=price,
            commission=commission,
            slippage=abs(price - reference) * qty,
            reason=reason,
        )
        j = self._index[order.symbol]
        if order.side == "buy":
            self.holdings[j].slippage += fill.slippage
            return [fill, *self._bought(ts, order.symbol, qty, price, cents(commission))]
        return [fill, *self._sold(ts, order.symbol, qty, price, cents(commission), reason, fill.slippage)]

    def _affordable(self, j: int, qty: float, price: float) -> float:
        """``qty``, or less when the cash does not cover it (and its commission)."""
        symbol, step = self.symbols[j], self.increments[j]

        def costs(units: float) -> int:
            return notional_cents(units, price) + cents(self.cost.fill_commission(symbol, units, price))

        if costs(qty) <= self.cash_cents:
            return qty
        units = math.floor((self.cash_cents / 100.0 - self.cost.commission) / price / step)
        while units > 0 and costs(units * step) > self.cash_cents:
            units -= 1
        return float(units) if step == 1.0 else round(units * step, 12)

    def _bought(self, ts: int, symbol: str, qty: float, price: float, commission: int) -> list[Event]:
        holding = self.holdings[self._index[symbol]]
        self.cash_cents -= notional_cents(qty, price) + commission
        opened = holding.qty == 0
        if opened:
            holding.entry_ts = ts
        holding.qty += qty
        holding.cost_cents += notional_cents(qty, price)
        holding.commission_cents += commission
        if not opened:
            return []
        return [
            PositionOpened(
                ts=ts,
                symbol=symbol,
                strategy=self.strategy,
                qty=qty,
                entry_price=price,
                entry_commission=commission / 100,
            )
        ]

    def _sold(
        self, ts: int, symbol: str, qty: float, price: float, commission: int, reason: str, slippage: float
    ) -> list[Event]:
        holding = self.holdings[self._index[symbol]]
        proceeds = notional_cents(qty, price)
        self.cash_cents += proceeds - commission
        whole = qty >= holding.qty - qty_tolerance(symbol)
        cost = holding.cost_cents if whole else part_cents(holding.cost_cents, qty, holding.qty)
        entry_commission = (
            holding.commission_cents if whole else part_cents(holding.commission_cents, qty, holding.qty)
        )
        entry_slippage = holding.slippage if whole else holding.slippage * qty / holding.qty
        closed = PositionClosed(
            ts=ts,
            symbol=symbol,
            strategy=self.strategy,
            qty=qty,
            entry_ts=holding.entry_ts,
            entry_price=holding.cost_cents / 100.0 / holding.qty,
            exit_price=price,
            exit_reason="end" if reason == "end" else "signal",
            gross_pnl=(proceeds - cost) / 100.0,
            commission=(entry_commission + commission) / 100.0,
            net_pnl=(proceeds - cost - entry_commission - commission) / 100.0,
            slippage=entry_slippage + slippage,
        )
        holding.slippage -= entry_slippage
        holding.cost_cents -= cost
        holding.commission_cents -= entry_commission
        holding.qty = 0.0 if whole else holding.qty - qty
        return [closed]
