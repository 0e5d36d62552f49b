"""`tape data fetch` through the real alpaca-py data clients against the local emulator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tape.store.credentials import AlpacaCredentials, load_alpaca_credentials
from tests.alpaca_emulator import AlpacaEmulator
from tests.conftest import TapeRunner, assert_clean_failure

DAY = 86_400_000_000_000
HOUR = 3_600_000_000_000
# "now" as the CLI sees it comes from the clock; seed bars ending yesterday so a 400-day window holds them.


def _seed(emu: AlpacaEmulator, symbol: str, count: int, step: int) -> None:
    import time

    end = (time.time_ns() // DAY - 1) * DAY + 5 * HOUR
    rows = []
    for k in range(count):
        price = 100.0 + k * 0.1
        rows.append((end - (count - 1 - k) * step, price, price + 1, price - 1, price + 0.5, 1000.0 + k))
    emu.add_bars(symbol, [(dt.datetime.fromtimestamp(r[0] / 1e9, tz=dt.UTC), *r[1:]) for r in rows])
    emu.set_page_size_cap(50)


def _env(emu: AlpacaEmulator, **extra: str) -> dict[str, str]:
    return {
        "ALPACA_API_KEY": emu.key_id,
        "ALPACA_API_SECRET": emu.secret,
        "ALPACA_DATA_URL": emu.data_url,
        **extra,
    }


def test_fetch_follows_every_page_and_stores_the_bars(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator
) -> None:
    _seed(alpaca_emulator, "AAPL", 180, DAY)
    result = tape("data", "fetch", "AAPL", "--days-back", "400", env=_env(alpaca_emulator))
    assert result.returncode == 0, result.stderr
    assert "180 bars stored" in result.stdout
    pages = [r for r in alpaca_emulator.requests if r.path.endswith("/bars")]
    assert len(pages) == 4  # 180 bars in pages of 50
    shown = [
        json.loads(x) for x in tape("data", "show", "AAPL", "--json", "--limit", "1").stdout.splitlines()
    ]
    assert [b["close"] for b in shown] == [100.5, pytest.approx(118.4)]


def test_fetch_crypto_pairs_by_the_hour(tape: TapeRunner, alpaca_emulator: AlpacaEmulator) -> None:
    _seed(alpaca_emulator, "BTC/USD", 72, HOUR)
    result = tape(
        "data", "fetch", "BTC/USD", "--days-back", "5", "--timeframe", "1Hour", env=_env(alpaca_emulator)
    )
    assert result.returncode == 0, result.stderr
    listed = [json.loads(x) for x in tape("data", "list", "--json").stdout.splitlines()]
    assert {"symbol": "BTC/USD", "timeframe": "1Hour", "source": "alpaca", "rows": 72}.items() <= listed[
        0
    ].items()


def test_fetching_again_merges_without_duplicates(tape: TapeRunner, alpaca_emulator: AlpacaEmulator) -> None:
    _seed(alpaca_emulator, "MSFT", 30, DAY)
    for _ in range(2):
        assert tape("data", "fetch", "MSFT", "--days-back", "60", env=_env(alpaca_emulator)).returncode == 0
    listed = [json.loads(x) for x in tape("data", "list", "--json").stdout.splitlines()]
    assert listed[0]["rows"] == 30


def test_rejected_credentials_name_the_variable_not_the_secret(
    tape: TapeRunner, alpaca_emulator: AlpacaEmulator
) -> None:
    _seed(alpaca_emulator, "AAPL", 5, DAY)
    env = _env(alpaca_emulator, ALPACA_API_SECRET="s3cr3t-value")
    result = tape("data", "fetch", "AAPL", env=env)
    assert_clean_failure(result, "Alpaca rejected the credentials")
    assert "s3cr3t-value" not in result.stderr + result.stdout


def test_missing_credentials_name_the_variable(tape: TapeRunner, tmp_path: Path) -> None:
    result = tape("data", "fetch", "AAPL", env={"ALPACA_API_KEY": "", "ALPACA_API_SECRET": ""})
    assert_clean_failure(result, "ALPACA_API_KEY is not set")


def test_a_server_error_is_one_clear_line(tape: TapeRunner, alpaca_emulator: AlpacaEmulator) -> None:
    alpaca_emulator.fail_next(10, status=500)
    assert_clean_failure(tape("data", "fetch", "AAPL", env=_env(alpaca_emulator)), "HTTP 500")


def test_an_unknown_timeframe_is_refused(tape: TapeRunner, alpaca_emulator: AlpacaEmulator) -> None:
    result = tape("data", "fetch", "AAPL", "--timeframe", "3Min", env=_env(alpaca_emulator))
    assert_clean_failure(result, "unknown timeframe '3Min'")


def test_credentials_accept_a_base_url_ending_in_v2(tmp_path: Path) -> None:
    creds = load_alpaca_credentials(
        {
            "ALPACA_API_KEY": "k",
            "ALPACA_API_SECRET": "s",
            "ALPACA_BASE_URL": "https://paper-api.alpaca.markets/v2",
        },
        dotenv_path=None,
    )
    assert creds.base_url == "https://paper-api.alpaca.markets" and creds.paper


def test_credentials_come_from_dotenv_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ALPACA_API_KEY=from-file\nALPACA_API_SECRET=file-secret\n")
    creds = load_alpaca_credentials({"ALPACA_API_KEY": "from-env"}, dotenv_path=dotenv)
    assert (creds.api_key, creds.secret_key) == ("from-env", "file-secret")


def test_the_secret_never_shows_in_repr() -> None:
    creds = AlpacaCredentials(api_key="AKXYZ123", secret_key="very-secret")
    assert "very-secret" not in repr(creds) and "very-secret" not in str(creds)
