"""The Alpaca adapter through the real alpaca-py TradingClient against the local trading emulator."""

from __future__ import annotations

import pytest

from tape.actors.alpaca.broker import AlpacaBroker, BrokerRejected
from tape.events.errors import ConfigError
from tape.events.schema import OrderSubmitted
from tape.store.credentials import AlpacaCredentials
from tests.alpaca_emulator import AlpacaEmulator


def _broker(emu: AlpacaEmulator, secret: str | None = None) -> AlpacaBroker:
    creds = AlpacaCredentials(api_key=emu.key_id, secret_key=secret or emu.secret, base_url=emu.trading_url)
    return AlpacaBroker(creds, retry_wait_seconds=0)


def _buy(coid: str, qty: float = 10, symbol: str = "AAPL") -> OrderSubmitted:
    return OrderSubmitted(ts=1, client_order_id=coid, intent_id="i", symbol=symbol, side="buy", qty=qty)


def test_a_market_buy_fills_and_moves_cash_and_positions(trading_emulator: AlpacaEmulator) -> None:
    broker = _broker(trading_emulator)
    placed = broker.submit(_buy("run-o1"))
    assert placed.status == "accepted"  # as Alpaca answers a submit; the fill follows
    state = broker.order("run-o1")
    assert (state.status, state.filled_qty, state.broker_order_id) == ("filled", 10, placed.broker_order_id)
    assert broker.positions() == {"AAPL": 10.0}
    assert broker.account().cash == pytest.approx(100_000 - 1_000)


def test_retrying_a_client_order_id_never_places_a_second_order(trading_emulator: AlpacaEmulator) -> None:
    broker = _broker(trading_emulator)
    first = broker.submit(_buy("run-o7"))
    again = broker.submit(_buy("run-o7"))  # e.g. after a timeout or a restart
    assert again.broker_order_id == first.broker_order_id
    assert len(trading_emulator.orders) == 1 and broker.positions() == {"AAPL": 10.0}


def test_partial_fills_become_one_fill_per_new_execution(trading_emulator: AlpacaEmulator) -> None:
    trading_emulator.set_partial_fills(0.4)
    broker = _broker(trading_emulator)
    order = _buy("run-o2")
    broker.submit(order)
    first = broker.new_fill(order, ts=2, reason="entry")
    assert first is not None and first.qty == 4 and first.price == 100.0
    assert broker.new_fill(order, ts=3, reason="entry", logged_qty=4, logged_notional=400) is None
    trading_emulator.set_partial_fills(None, client_order_id="run-o2")
    trading_emulator.set_price("AAPL", 101.0)  # the rest fills at the new price
    second = broker.new_fill(order, ts=4, reason="entry", logged_qty=4, logged_notional=400)
    assert second is not None and second.qty == 6 and second.price == pytest.approx(101.0)
    assert second.exec_id != first.exec_id


def test_an_oco_exit_rests_until_a_leg_is_crossed(trading_emulator: AlpacaEmulator) -> None:
    broker = _broker(trading_emulator)
    broker.submit(_buy("run-o3"))
    oco = OrderSubmitted(
        ts=2,
        client_order_id="run-o4",
        intent_id="i",
        symbol="AAPL",
        side="sell",
        qty=10,
        order_type="oco",
        limit_price=110.0,
        stop_price=95.0,
    )
    assert broker.submit(oco).status in ("new", "accepted", "held")
    working = broker.orders("open")  # the OCO and its stop leg, as Alpaca lists them
    assert "run-o4" in [o.client_order_id for o in working]
    assert {(o.symbol, o.side) for o in working} == {("AAPL", "sell")}
    trading_emulator.set_price("AAPL", 94.0)
    assert broker.order("run-o4").status == "filled"
    assert broker.positions() == {}


def test_cancel_and_list_by_status(trading_emulator: AlpacaEmulator) -> None:
    broker = _broker(trading_emulator)
    broker.submit(_buy("run-o5"))
    oco = OrderSubmitted(
        ts=2,
        client_order_id="run-o6",
        intent_id="i",
        symbol="AAPL",
        side="sell",
        qty=10,
        order_type="oco",
        limit_price=120.0,
        stop_price=80.0,
    )
    broker.submit(oco)
    broker.cancel("run-o6")
    assert broker.orders("open") == []
    assert {o.status for o in broker.orders("closed")} == {"filled", "canceled"}


def test_insufficient_buying_power_is_a_rejection_with_the_reason(trading_emulator: AlpacaEmulator) -> None:
    with pytest.raises(BrokerRejected, match="insufficient buying power"):
        _broker(trading_emulator).submit(_buy("run-o8", qty=5_000))


def test_rejected_credentials_name_the_variables_not_the_secret(trading_emulator: AlpacaEmulator) -> None:
    with pytest.raises(ConfigError, match="ALPACA_API_KEY") as caught:
        _broker(trading_emulator, secret="wrong-secret-value").account()
    assert "wrong-secret-value" not in str(caught.value)


def test_server_errors_are_retried_then_reported(trading_emulator: AlpacaEmulator) -> None:
    trading_emulator.fail_next(1, status=503)
    assert _broker(trading_emulator).account().cash == 100_000  # one 503, then the retry succeeds
    trading_emulator.fail_next(10, status=500)
    with pytest.raises(BrokerRejected, match="HTTP 500"):
        _broker(trading_emulator).account()
