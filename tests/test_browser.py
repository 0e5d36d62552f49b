"""The HTML report and the web dashboard in a real headless Chromium (the Debian package, through its
chromedriver): what a person opening them would see. Skipped, with the reason, where Chromium is not
installed (`make browser-deps` installs it; CI always does).

Each test saves a screenshot under its tmp dir (and in $TAPE_SCREENSHOTS when set) to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, assert_clean_failure

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="Chromium is not installed (run `make browser-deps`)"
)
# One calendar year of daily bars replayed in ~10 s: the dashboard has time to show it moving.
SPEED = str(365 * 86_400 // 10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module. External network goes to a dead proxy: only 127.0.0.1
    and files are reachable, so a page that needed a CDN would show it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--proxy-server=http://127.0.0.1:9",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _env(root: Path) -> dict[str, str]:
    env = {**os.environ, "TAPE_LOG": str(root / "tape.db"), "TAPE_DATA": str(root / "tape-data.db")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(COLUMNS="250", NO_COLOR="1")
    for name in ("TAPE_DEBUG", "TAPE_DASHBOARD_TOKEN"):
        env.pop(name, None)
    return env


def _tape(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tape.cli.app", *args],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def backtest_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`tape backtest AAPL` (the demo's run) in its own directory: its summary and the page it wrote."""
    root = tmp_path_factory.mktemp("backtest")
    done = _tape(root, "backtest", "AAPL", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    pages = list((root / "results").glob(f"report_AAPL_*_{summary['run_id']}.html"))
    assert len(pages) == 1, list((root / "results").iterdir())
    return {"root": root, "summary": summary, "page": pages[0]}


def _screenshot(driver: Any, path: Path) -> None:
    driver.save_screenshot(str(path))
    extra = os.environ.get("TAPE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


def _console_errors(driver: Any) -> list[str]:
    """Errors the page logged since the last call (reading the log empties it)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _wait(what: str, found: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never happened within {timeout:g} s: {what}")


def _open_offline(driver: Any, page: Path) -> None:
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        driver.get(page.as_uri())
        _wait("the charts drew", lambda: driver.execute_script(_DRAWN), timeout=30)
    finally:
        driver.delete_network_conditions()


_DRAWN = """
const drawn = id => document.querySelectorAll(`#${id} .main-svg .scatterlayer .trace`).length;
return drawn("equity") >= 2 && drawn("price0") >= 3
  && document.querySelectorAll("#months .hm, #months image").length > 0;
"""


# --------------------------------------------------------------------------- the HTML report


def test_backtest_report_opens_offline_with_equity_drawdown_prices_and_every_trade(
    browser: Any, backtest_run: dict[str, Any], tmp_path: Path
) -> None:
    _open_offline(browser, backtest_run["page"])
    names = browser.execute_script(
        "return ['equity', 'price0'].map(id => document.getElementById(id).data.map(t => t.name))"
    )
    assert any(n.startswith("sma_cross") for n in names[0]) and "buy & hold" in names[0]
    assert "strategy drawdown" in names[0]
    trades = backtest_run["summary"]["total_trades"]
    assert f"entry ({trades})" in names[1] and f"exit ({trades})" in names[1] and "AAPL close" in names[1]
    assert any("(at signals)" in n for n in names[1])  # the indicator values the strategy recorded
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert [r for r in resources if not r.startswith(("file:", "data:", "blob:"))] == []
    rows = browser.find_elements("css selector", "#trades tbody tr")
    assert len(rows) == trades
    first = backtest_run["summary"]["trades"][0]
    cells = [c.text for c in rows[0].find_elements("css selector", "td")]
    assert cells[:3] == ["1", "AAPL", first["entry_time"]] and cells[-1] == first["exit_reason"]
    assert float(cells[7].replace(",", "")) == first["pnl"]
    _screenshot(browser, tmp_path / "report.png")
    assert _console_errors(browser) == []


def test_hovering_a_trade_marker_shows_the_signal_risk_check_and_fills_behind_it(
    browser: Any, backtest_run: dict[str, Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    _open_offline(browser, backtest_run["page"])
    index = browser.execute_script(
        "return document.getElementById('price0').data.findIndex(t => t.name.startsWith('entry'))"
    )
    marker = browser.find_elements("css selector", "#price0 .scatterlayer .trace")[index].find_elements(
        "css selector", ".points path"
    )[10]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", marker)
    ActionChains(browser).move_to_element(marker).perform()
    tip = _wait("the tooltip showed", lambda: browser.find_element("id", "tip").text.strip())
    number = int(re.match(r"trade (\d+) AAPL", tip).group(1))  # type: ignore[union-attr]
    explained = _tape(
        backtest_run["root"], "explain", backtest_run["summary"]["run_id"], "-t", str(number), "--json"
    )
    events = [json.loads(line) for line in explained.stdout.splitlines()]
    signal = next(e for e in events if e["kind"] == "signal")
    assert f"signal buy: {signal['reason']}" in tip
    assert "risk accepted" in tip
    fills = [e for e in events if e["kind"] == "fill"]
    assert tip.count(" fill ") == len(fills) >= 2
    trade = backtest_run["summary"]["trades"][number - 1]
    assert f"net {trade['pnl']:+,.2f}" in tip
    _screenshot(browser, tmp_path / "report_hover.png")
    assert _console_errors(browser) == []


def test_clicking_a_trade_table_column_sorts_all_trades_by_it(
    browser: Any, backtest_run: dict[str, Any]
) -> None:
    _open_offline(browser, backtest_run["page"])
    header = next(h for h in browser.find_elements("css selector", "#trades th") if h.text == "net P&L")

    def pnl_column() -> list[float]:
        return [
            float(t.replace(",", ""))
            for t in browser.execute_script(
                "return Array.from(document.querySelectorAll('#trades tbody tr td:nth-child(8)'))"
                ".map(td => td.textContent)"
            )
        ]

    header.click()
    ascending = pnl_column()
    assert ascending == sorted(t["pnl"] for t in backtest_run["summary"]["trades"])
    header.click()
    assert pnl_column() == ascending[::-1]
    assert _console_errors(browser) == []


# --------------------------------------------------------------------------- the dashboard


class Dashboard:
    """`tape dashboard` on a free port, as a user starts it."""

    def __init__(self, root: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tape.cli.app", "dashboard", "--port", "0", *args],
            cwd=root,
            env=_env(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        found = re.search(r"on (http://\S+/)", line)
        assert found, line + (self.process.stderr.read() if self.process.stderr else "")
        self.url = found.group(1).replace("0.0.0.0", "127.0.0.1")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def _page_status(driver: Any) -> dict[str, str]:
    return driver.execute_script(
        """
        const total = document.querySelector('#positions tr.total');
        return {state: document.getElementById('state').textContent,
                equity: document.getElementById('equity').textContent,
                trades: total ? total.lastElementChild.textContent : '',
                total: total ? total.children[6].textContent : '',
                decisions: document.querySelectorAll('#decisions tr.decision').length};
        """
    )


def _logged_trades(root: Path) -> int:
    """Closed trades of the newest trading run, read from the log as the log has them now."""
    from tape.events.schema import PositionClosed
    from tape.store.log import EventLog
    from tape.store.run_follow import newest_trading_run
    from tape.store.runs import run_events

    with EventLog.open(root / "tape.db", readonly=True) as log:
        run = newest_trading_run(log)
        return sum(isinstance(r.event, PositionClosed) for r in run_events(log, run))


def test_dashboard_follows_a_running_sim_session_and_shows_each_new_trade_within_seconds(
    browser: Any, tmp_path: Path
) -> None:
    trade = subprocess.Popen(
        [
            *(sys.executable, "-m", "tape.cli.app", "trade", "AAPL", "MSFT"),
            *("--broker", "sim", "--feed", "replay", "--speed", SPEED),
            *("--start", "2010-01-01", "--end", "2010-12-31"),
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait("the session created its log", lambda: (tmp_path / "tape.db").exists(), timeout=90)
    dashboard = Dashboard(tmp_path)
    try:
        browser.get(dashboard.url)
        _wait(
            "the page showed the running session",
            lambda: "state running" in _page_status(browser)["state"],
            90,
        )
        seen = -1
        checked = 0
        while trade.poll() is None:
            logged = _logged_trades(tmp_path)
            if logged > seen:  # a trade was appended: the page must show it within a few seconds
                _wait(
                    f"{logged} trades on the page",
                    lambda logged=logged: int(_page_status(browser)["trades"] or 0) >= logged,
                    timeout=5,
                )
                seen, checked = logged, checked + 1
            time.sleep(0.2)
        _screenshot(browser, tmp_path / "dashboard.png")
        assert trade.wait(timeout=60) == 0, trade.stderr.read().decode() if trade.stderr else ""
        assert checked >= 2, "the session traded too little to watch trades arrive"
        final = _wait(
            "the page showed the end", lambda: "state completed" in _page_status(browser)["state"], 10
        )
        assert final
        status = json.loads(_tape(tmp_path, "status", "--json").stdout)
        shown = _page_status(browser)
        assert int(shown["trades"]) == sum(p["trades"] for p in status["positions"].values())
        assert shown["total"] == f"{'+' if status['total_pnl'] > 0 else ''}{status['total_pnl']:,.2f}"
        assert shown["decisions"] > 0
        assert _console_errors(browser) == []
    finally:
        dashboard.close()
        if trade.poll() is None:
            trade.terminate()
            trade.wait(timeout=30)


def test_dashboard_off_loopback_refuses_requests_without_its_token(
    browser: Any, backtest_run: dict[str, Any], tmp_path: Path
) -> None:
    root = backtest_run["root"]
    assert_clean_failure(_tape(root, "dashboard", "--host", "0.0.0.0"), "--token")
    dashboard = Dashboard(root, "--host", "0.0.0.0", "--token", "s3cret-token")
    try:
        for path in ("", "status", "stream"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(dashboard.url + path, timeout=10)
            assert refused.value.code == 401
            wrong = urllib.request.Request(dashboard.url + path, headers={"Authorization": "Bearer nope"})
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(wrong, timeout=10)
        browser.get(dashboard.url)
        assert "unauthorized" in browser.find_element("tag name", "body").text
        _console_errors(browser)  # the refused page load is logged as a failed resource: expected
        browser.get(dashboard.url + "?token=s3cret-token")
        equity = f"{backtest_run['summary']['final_equity']:,.2f}"
        _wait("the demo run's equity", lambda: _page_status(browser)["equity"] == equity)
        assert "state completed" in _page_status(browser)["state"]
        decisions = browser.find_element("id", "decisions").text
        assert "signal" in decisions and "crossed" in decisions  # a decision with the strategy's reason
        assert "s3cret-token" not in browser.find_element("tag name", "body").text
        _screenshot(browser, tmp_path / "dashboard_demo.png")
        assert _console_errors(browser) == []
    finally:
        dashboard.close()
