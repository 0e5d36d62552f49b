"""The dashboard's one page: it renders each status the server sends on /stream (no library, no CDN)."""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tape dashboard</title><link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1100px; padding: 0 0.8em;
  color: #222; }
header { display: flex; flex-wrap: wrap; gap: 0.4em 1.4em; align-items: baseline; }
header h1 { font-size: 1.2em; margin: 0; }
.muted { color: #666; } .pos { color: #1a7f37; } .neg { color: #c62828; }
.big { font-size: 1.6em; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 1.5em; margin: 0.8em 0; }
h2 { font-size: 1em; margin: 1.2em 0 0.3em; }
table { border-collapse: collapse; font-size: 0.88em; width: 100%; }
th { text-align: left; background: #f2f2f2; padding: 3px 8px; }
td { padding: 2px 8px; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
td.num, th.num { text-align: right; }
tr.total td { font-weight: bold; }
#curve { width: 100%; height: 140px; border: 1px solid #ddd; background: #fafafa; }
#link { font-size: 0.8em; padding: 1px 6px; border-radius: 8px; background: #eee; }
#link.live { background: #d8f5dd; } #link.down { background: #fbdada; }
@media (max-width: 640px) { .hide-narrow { display: none; } }
</style></head><body>
<header><h1 id="title">tape dashboard</h1><span id="state" class="muted"></span>
<span id="when" class="muted"></span><span id="link">connecting</span></header>
<div class="cards">
<div><div class="muted">equity</div><div class="big" id="equity">-</div></div>
<div><div class="muted">P&amp;L</div><div class="big" id="pnl">-</div></div>
<div><div class="muted">drawdown</div><div class="big" id="drawdown">-</div></div>
<div><div class="muted">cash</div><div class="big" id="cash">-</div></div>
</div>
<svg id="curve" viewBox="0 0 1000 140" preserveAspectRatio="none"><polyline id="line" fill="none"
 stroke="#1f77b4" stroke-width="2" vector-effect="non-scaling-stroke" points=""/></svg>
<div class="muted" id="curve-note"></div>
<h2>Positions and P&amp;L</h2>
<table id="positions"><thead><tr><th>symbol</th><th class="num">qty</th><th class="num">entry</th>
<th class="num">last</th><th class="num">unrealised</th><th class="num">realised</th>
<th class="num">total</th><th class="num">trades</th></tr></thead><tbody></tbody></table>
<h2>Recent decisions</h2>
<table id="decisions"><thead><tr><th>time</th><th>symbol</th><th>what</th><th>detail</th></tr></thead>
<tbody></tbody></table>
<h2 id="alerts-title">Alerts</h2>
<table id="alerts"><thead><tr><th>time</th><th>rule</th><th>severity</th><th>message</th></tr></thead>
<tbody></tbody></table>
<h2>Health</h2><div id="health" class="muted"></div>
<script>
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const money = v => v === null || v === undefined ? "-" :
  v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
const signed = v => (v > 0 ? "+" : "") + money(v);
const tone = v => v > 0 ? "pos" : v < 0 ? "neg" : "";
const when = ts => ts ? new Date(ts / 1e6).toLocaleString("en-US",
  {timeZone: "America/New_York", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
   minute: "2-digit", hour12: false}) + " NY" : "-";
function cell(text, cls) { const td = document.createElement("td"); td.textContent = text;
  if (cls) td.className = cls; return td; }
function row(cells, cls) { const tr = document.createElement("tr"); if (cls) tr.className = cls;
  tr.append(...cells); return tr; }
function fill(id, rows) { document.querySelector(`#${id} tbody`).replaceChildren(...rows); }
function show(s) {
  if (s.state === "waiting") { document.getElementById("state").textContent = s.message; return; }
  document.getElementById("title").textContent = `run ${s.run_id}`;
  document.getElementById("state").textContent =
    `${s.mode} ${s.strategy} ${s.symbols.join(" ")} · state ${s.state}`;
  document.getElementById("when").textContent = "at " + when(s.last_ts);
  document.getElementById("equity").textContent = money(s.equity);
  const pnl = document.getElementById("pnl");
  pnl.textContent = signed(s.total_pnl); pnl.className = "big " + tone(s.total_pnl);
  document.getElementById("drawdown").textContent =
    s.drawdown_pct === null ? "-" : s.drawdown_pct.toFixed(2) + " %";
  document.getElementById("cash").textContent = money(s.cash);
  const c = s.equity_curve, lo = Math.min(...c), hi = Math.max(...c), span = hi - lo || 1;
  document.getElementById("line").setAttribute("points", c.map((v, i) =>
    `${(c.length > 1 ? i / (c.length - 1) : 0) * 1000},${130 - (v - lo) / span * 120}`).join(" "));
  document.getElementById("curve-note").textContent = c.length ?
    `equity, last ${c.length} marks: ${money(lo)} to ${money(hi)}` : "no equity marks yet";
  const positions = Object.entries(s.positions).map(([sym, p]) => row([cell(sym),
    cell(String(p.qty), "num"), cell(money(p.entry_price), "num"), cell(money(p.last_price), "num"),
    cell(signed(p.unrealized_pnl), "num " + tone(p.unrealized_pnl)),
    cell(signed(p.realized_pnl), "num " + tone(p.realized_pnl)),
    cell(signed(p.total_pnl), "num " + tone(p.total_pnl)), cell(String(p.trades), "num")]));
  const trades = Object.values(s.positions).reduce((n, p) => n + p.trades, 0);
  positions.push(row([cell("TOTAL"), cell(""), cell(""), cell(""),
    cell(signed(s.unrealized_pnl), "num " + tone(s.unrealized_pnl)),
    cell(signed(s.realized_pnl), "num " + tone(s.realized_pnl)),
    cell(signed(s.total_pnl), "num " + tone(s.total_pnl)), cell(String(trades), "num")], "total"));
  fill("positions", positions);
  fill("decisions", s.decisions.slice().reverse().map(d =>
    row([cell(when(d.ts)), cell(d.symbol), cell(d.kind),
         cell(d.reason ? `${d.text} · ${d.reason}` : d.text)], "decision")));
  document.getElementById("alerts-title").textContent = `Alerts (${s.alert_count})`;
  fill("alerts", s.alerts.slice().reverse().map(a =>
    row([cell(when(a.ts)), cell(a.rule), cell(a.severity), cell(a.message)])));
  const actors = s.actors.map(a => `${a.actor}: ${a.state} (started ${a.starts}x)`).join("; ");
  const channels = Object.entries(s.notifications.channels).map(([n, c]) =>
    `${n} ${c.sent} sent, ${c.failed_attempts} failed attempts, ${c.given_up} undelivered`).join("; ");
  document.getElementById("health").textContent = "actors: " + (actors || "none logged") +
    (channels ? " · notifications: " + channels : "") + ` · ${s.cycles} cycles`;
}
const link = document.getElementById("link");
const source = new EventSource("stream" + q);
source.onopen = () => { link.textContent = "live"; link.className = "live"; };
source.onmessage = ev => { show(JSON.parse(ev.data)); document.body.dataset.updates =
  String(Number(document.body.dataset.updates || 0) + 1); };
source.onerror = () => { link.textContent = "reconnecting"; link.className = "down"; };
</script>
</body></html>
"""
