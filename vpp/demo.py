"""`vpp demo`: a simulated park run end to end on a compressed clock.

What it does, in order:

1. uses the configured Redis, or starts a private ``redis-server`` (AOF on);
   uses the MQTT broker given with ``--mqtt``, or starts a private ``mosquitto``;
2. starts the service (API, device supervisor, control loops) on a clock that
   runs ``--time-scale`` times faster than real time, and serves ``/metrics``;
3. enrolls the demo park from ``config/demo-park.toml`` (four enterprises with
   their contracts, revenue meters), lays down two weeks of its history
   (`vpp.demo_park`: every device and meter on the 15-minute grid, and the
   past event that history carries), and starts its devices as simulators
   speaking the real protocols (Modbus TCP/SunSpec batteries, OCPP 2.0.1/2.1
   chargers, MQTT loads and a revenue meter) on loopback, following the same
   load shapes as the history;
4. builds a day-ahead bid from the live flexibility;
5. acts as the grid operator: sends a 2-hour peak-shaving event (inside what
   the park can deliver) through the REST API, and shows target versus
   delivered by asset kind while the park delivers it;
6. prints the event report (the baseline's method and the days it came from,
   delivered, performance, settlement estimate, and each enterprise's part
   under its contract); waits out the rebound window after the event so that
   the avoided CO2 counts what the park draws back, at the park's grid factor;
   writes the report as JSON and CSV;
7. ends with the park's energy-carbon ledger over its simulated days (the
   park operator entered each enterprise's monthly fuels and green power at
   the start): per enterprise electricity, tce, tCO2, green-power and
   clean-energy shares, and the park against the zero-carbon thresholds; and
   exits 0 when the event ran to completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from adapters.sim.park import SimParkSpec, run_park
from vpp.auth import Role
from vpp.client import ParkClient, issue_tokens
from vpp.clock import Clock
from vpp.demo_park import (
    HISTORY_DAYS,
    demo_ledger_entries,
    demo_origin,
    lay_history,
    simulator_shapes,
)
from vpp.history.generate import official_day_type
from vpp.ledger.export import aligned
from vpp.ledger.indicators import CLEAN_ENERGY_THRESHOLD, size_class
from vpp.metrics import Metrics
from vpp.model import Battery, ModbusConnection
from vpp.parkfile import ParkFile, enroll_park, load_park_file, simulator_spec
from vpp.runtime import runtime_cleanup_ctx
from vpp.servers import MosquittoServer, free_port, port_open
from vpp.service import open_state, redis_endpoint, running_service
from vpp.settings import Settings, redact_url

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger("vpp.demo")


@dataclass
class DemoOptions:
    """Options of the demo.

    Attributes:
        park_file: the park to simulate and enroll.
        time_scale: simulated seconds per real second.
        event_minutes: length of the peak-shaving event (simulated minutes).
        share: the event's target as a share of the bid for its window.
        port: HTTP port (0 picks a free one).
        mqtt: ``host:port`` of an MQTT broker to use instead of a private one.
        out_dir: where the report is written (a temporary folder when None).
    """

    park_file: Path = Path("config/demo-park.toml")
    time_scale: float = 120.0
    event_minutes: int = 120
    share: float = 0.8
    port: int = 0
    mqtt: str | None = None
    out_dir: Path | None = None


def _say(text: str) -> None:
    print(text, flush=True)


def _free_modbus_ports(park_file: ParkFile) -> ParkFile:
    """The park file with each simulated battery's Modbus port moved to a free one if taken."""
    moved: dict[tuple[str, int], int] = {}

    def move(conn: ModbusConnection) -> ModbusConnection:
        key = (conn.host, conn.port)
        if key not in moved:
            moved[key] = free_port() if port_open(*key) else conn.port
        return conn.model_copy(update={"port": moved[key]})

    assets = [
        asset.model_copy(update={"connection": move(asset.connection)})
        if isinstance(asset, Battery) and isinstance(asset.connection, ModbusConnection)
        else asset
        for asset in park_file.assets
    ]
    return dataclasses.replace(park_file, assets=assets)


async def _delivered_by_kind(client: ParkClient) -> dict[str, float]:
    """``vpp_delivered_kw`` of the park by asset kind, from ``/metrics``."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(await client.metrics_text()):
        if family.name == "vpp_delivered_kw":
            for sample in family.samples:
                if sample.labels.get("park") == client.park:
                    out[sample.labels["kind"]] = sample.value
    return out


async def _wait_for_flexibility(
    client: ParkClient, expected: int, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    env: dict[str, Any] = {}
    while time.monotonic() < deadline:
        env = await client.flexibility(intervals=8)
        if env["assets_included"] >= expected:
            break
        await asyncio.sleep(0.5)
    return env


def _fmt(v: float | None) -> str:
    return "      -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:8.1f}"


def _whole(v: float | None) -> str:
    # a report's totals are null until an interval is measured
    return "-" if v is None else f"{v:.0f}"


async def _watch(
    client: ParkClient, event_id: str, clock: Clock, until: datetime
) -> dict[str, Any]:
    """Show the event live until it is over; return the final record."""
    shown_state = ""
    last_line = 0.0
    record: dict[str, Any] = {}
    tty = sys.stdout.isatty()
    while True:
        record = await client.event(event_id)
        state = record["state"]
        if state != shown_state:
            _say(f"  event {event_id}: {state}")
            shown_state = state
        if state in ("completed", "cancelled", "failed"):
            return record
        start = datetime.fromisoformat(record["start"])
        started = clock.now() >= start  # active a little ahead: nothing to show yet
        if state == "active" and started and time.monotonic() - last_line > (0.5 if tty else 3.0):
            k = min(int((clock.now() - start).total_seconds() // record["interval_s"]),
                    len(record["target_kw"]) - 1)  # fmt: skip
            kinds = await _delivered_by_kind(client)
            kind_text = "  ".join(f"{name} {value:+7.1f}" for name, value in sorted(kinds.items()))
            line = (
                f"  [{clock.now():%H:%M}] interval {k + 1}/{len(record['target_kw'])}  "
                f"target {_fmt(record['target_kw'][k])} kW  delivered "
                f"{_fmt(record['delivered_kw'][k])} kW  | by kind: {kind_text}"
            )
            print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
            last_line = time.monotonic()
        if clock.now() > until + timedelta(hours=1):
            return record
        await asyncio.sleep(0.25)


async def _after_rebound(
    client: ParkClient, clock: Clock, event_id: str, report: dict[str, Any], end: datetime
) -> dict[str, Any]:
    """The report once its rebound window is measured (the event's avoided CO2 made final).

    The window after the event (`vpp.events.rebound`) is read from the interval
    history, which the recorder writes at each interval close: the demo waits
    for it on the compressed clock, at most the window plus an hour.
    """
    window_h = report.get("rebound_window_h") or 0.0
    if report["avoided_co2_status"] != "provisional" or window_h <= 0:
        return report
    _say(f"rebound: measuring the {window_h:g} h after the event (what the park draws back)")
    until = end + timedelta(hours=window_h + 1)
    while report["avoided_co2_status"] == "provisional" and clock.now() < until:
        await asyncio.sleep(1.0)
        report = await client.report(event_id)
    return report


def _report_table(report: dict[str, Any]) -> str:
    rows = ["  interval  target kW  baseline kW  measured kW  delivered kW  performance"]
    for r in report["intervals"]:
        perf = r["performance"]
        rows.append(
            f"  {r['start'][11:16]}     {_fmt(r['target_kw'])}    {_fmt(r['baseline_kw'])}"
            f"     {_fmt(r['measured_kw'])}      {_fmt(r['delivered_kw'])}"
            f"       {'-' if perf is None else f'{perf:6.1%}'}"
        )
    return "\n".join(rows)


def _baseline_text(report: dict[str, Any]) -> str:
    info = report.get("baseline") or {}
    if not info:
        return "baseline: (not set)"
    text = f"baseline: {info['method']}"
    if info.get("fallback_reason"):
        text += f" (fell back from {info['requested']}: {info['fallback_reason']})"
    return text + (f" — {info['note']}" if info.get("note") else "")


def _enterprise_table(report: dict[str, Any]) -> str:
    rows = [
        "  enterprise    measured by   baseline from            adj.  delivered kWh  perf."
        "   payment  penalty  settlement"
    ]
    for e in report.get("enterprises", []):
        perf = e["performance"]
        adj = e["baseline_adjustment"]
        days = e["baseline_days"]
        source = e["baseline_source"] + (f", {len(days)} days" if days else "")
        rows.append(
            f"  {e['enterprise'][:12]:12}  {(e['meter'] or 'telemetry')[:12]:12}  "
            f"{source[:23]:23}  {'-' if adj is None else f'{adj:4.2f}':>4}  "
            f"{_whole(e['delivered_kwh']):>13}  {'-' if perf is None else f'{perf:5.0%}':>5}  "
            f"{_whole(e['payment']):>8}  {_whole(e['penalty']):>7}  {_whole(e['settlement']):>10}"
        )
    op = report.get("operator") or {}
    if op:
        money = (_whole(op["payment"]), _whole(op["penalty"]), _whole(op["settlement"]))
        rows.append(
            f"  {'park operator':12}  {'':12}  {'':23}  {'':4}  {'':>13}  {'':>5}  "
            f"{money[0]:>8}  {money[1]:>7}  {money[2]:>10}"
        )
    notes: list[str] = []
    for e in report.get("enterprises", []):
        if e["intervals_disagreeing"]:
            gaps = [i["meter_gap_kw"] for i in e["intervals"] if i.get("meter_gap_kw") is not None]
            mean = sum(gaps) / len(gaps) if gaps else 0.0
            notes.append(
                f"  ({e['enterprise']}: its meter minus its devices' telemetry, {mean:+.0f} kW on"
                f" average, is beyond the tolerance in {e['intervals_disagreeing']} of"
                f" {len(e['intervals'])} intervals: an unenrolled load, or a broken meter)"
            )
    return "\n".join(rows + notes)


@contextlib.asynccontextmanager
async def _simulated_park(
    spec: SimParkSpec,
    settings: Settings,
    clock: Clock,
    meter_base_loads: dict[str, Callable[[float], float]],
) -> AsyncIterator[None]:
    """Run the park's simulators (on loopback, at the clock's scale) once every one has started.

    Raises:
        RuntimeError: they did not start within 30 s.
    """
    started = asyncio.Event()
    task = asyncio.create_task(
        run_park(
            spec,
            time_scale=clock.time_scale,
            mqtt_host=settings.mqtt.host,
            mqtt_port=settings.mqtt.port,
            mqtt_root=settings.mqtt.root,
            csms_url=f"ws://127.0.0.1:{settings.ocpp.port}/ocpp/",
            started=started,
            origin=clock.now(),
            day_type=official_day_type,
            meter_base_loads=meter_base_loads,
        ),
        name="simulated-park",
    )
    try:
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({waiter, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # raises what stopped the simulators
        if not started.is_set():
            raise RuntimeError("the simulated park did not start in 30 s")
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _run(settings: Settings, opts: DemoOptions, redis_url: str, out_dir: Path) -> int:
    metrics = Metrics()
    state = open_state(settings, redis_url, metrics)
    try:
        park_file = _free_modbus_ports(load_park_file(opts.park_file))
        origin = demo_origin(datetime.now(UTC), park_file.park.timezone)
        clock = Clock(time_scale=opts.time_scale, origin=origin)
        spec = simulator_spec(park_file, ocpp_secret=settings.ocpp.auth_secret)
        park = park_file.park.id
        await enroll_park(state, park_file)
        laid = await lay_history(
            state, park_file, clock.now(), retention_days=settings.history.retention_days
        )
        spec, meter_base_loads = simulator_shapes(spec, park_file, clock.now())
        runtime = runtime_cleanup_ctx(with_ven=False)
        async with running_service(
            settings, state, metrics=metrics, clock=clock, runtime=runtime
        ) as service:
            base = service.base_url
            roles = [Role.GRID_OPERATOR, Role.PARK_OPERATOR, Role.VIEWER]
            tokens = await issue_tokens(state, park, roles, name="demo")
            _say(f"service: {base}  (metrics {base}/metrics, OpenAPI {base}/openapi.json)")
            sim_now = f"{clock.now():%Y-%m-%d %H:%M} ({park_file.park.timezone})"
            _say(f"clock:   {opts.time_scale:g}x real time from the latest working day's "
                 f"afternoon peak; simulated now {sim_now}")  # fmt: skip
            history = laid.history
            past = f"; the past event {laid.past_event} on its day" if laid.past_event else ""
            _say(f"history: {HISTORY_DAYS} days before today laid down (generated: "
                 f"{len(history.series)} series, {laid.series_days} series-days; revenue "
                 "meters as imported metering data; telemetry gaps and a gateway "
                 f"outage{past})")  # fmt: skip
            async with (
                ParkClient(base, park, tokens, timeout_s=60.0) as client,
                _simulated_park(spec, settings, clock, meter_base_loads),
            ):
                simulated = len(spec.batteries) + len(spec.chargers) + len(spec.loads)
                _say(f"park:    {park}: {len(park_file.assets)} assets enrolled, {simulated} "
                     f"simulated ({len(spec.batteries)} Modbus batteries, {len(spec.chargers)} "
                     f"OCPP chargers, {len(spec.loads)} MQTT loads) and {len(spec.meters)} "
                     "live revenue meter(s)")  # fmt: skip
                months = sorted({f"{day:%Y-%m}" for day in history.days})
                await _enter_ledger_entries(client, months)
                code = await _grid_operator(client, clock, opts, simulated, out_dir)
                await _show_ledger(client, history.days[0], clock.now().date(), out_dir)
                return code
    finally:
        await state.aclose()


async def _grid_operator(
    client: ParkClient, clock: Clock, opts: DemoOptions, simulated: int, out_dir: Path
) -> int:
    """Bid, send the event, watch it, write the report; the exit code."""
    env = await _wait_for_flexibility(client, int(simulated * 0.8), 30.0)
    down_now, up_now = env["down_kw"][0], env["up_kw"][0]
    _say(f"live:    {env['assets_included']} assets flexible now; down {down_now:.0f} kW, "
         f"up {up_now:.0f} kW in the current interval")  # fmt: skip

    await _foresight(client)
    now = clock.now()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = await client.create_bid({
        "id": f"day-ahead-{tomorrow:%Y%m%d}", "start": tomorrow.isoformat(),
        "profile": DECLARATION_PROFILE,
        "rules": {"min_capacity_kw": 100, "min_duration_minutes": 60},
    })  # fmt: skip
    peak = max(day["down"]["quantity_kw"])
    _say(f"bid:     day-ahead {day['id']}: peak down {peak:.0f} kW, "
         f"{day['total_down_kwh']:.0f} kWh down / {day['total_up_kwh']:.0f} kWh up "
         f"over the day, jointly deliverable={day['jointly_deliverable']} "
         f"({day['solve_seconds']} s)")  # fmt: skip
    _say(_bid_basis_text(day))
    declaration = await client.declaration(day["id"])
    (out_dir / f"{day['id']}-declaration.json").write_text(json.dumps(declaration, indent=2))
    _say(_declaration_text(declaration))

    step = 15
    # the bid took clock time: the event starts at the next quarter hour from *now*
    start = clock.now() + timedelta(minutes=20)
    start = start.replace(second=0, microsecond=0) + timedelta(minutes=(-start.minute) % step)
    n = opts.event_minutes // step
    window = await client.create_bid({
        "id": f"event-window-{start:%H%M}", "start": start.isoformat(), "intervals": n,
        "rules": {"min_capacity_kw": 0, "min_duration_minutes": 0},
        "flat_capacity": True,
    })  # fmt: skip
    offered = window["flat_down_kw"]
    target = round(opts.share * offered, 1)
    if target <= 0:
        _say("the park has no down flexibility for the event window; nothing to dispatch")
        return 1
    event_id = f"peak-{start:%Y%m%d-%H%M}"
    _say(f"grid:    sending {event_id}: shave {target:.0f} kW from {start:%H:%M} for "
         f"{opts.event_minutes} min ({opts.share:.0%} of the {offered:.0f} kW "
         "it can hold flat over the window)")  # fmt: skip
    sent = time.monotonic()
    created = await client.post_event({
        "id": event_id, "kind": "peak_shaving", "start": start.isoformat(),
        "target_kw": target, "duration_minutes": opts.event_minutes,
        "bid_id": window["id"],
    })  # fmt: skip
    _say(
        f"         acknowledged in {1000 * (time.monotonic() - sent):.0f} ms: "
        f"{created['event']['state']}"
    )
    end = start + timedelta(minutes=opts.event_minutes)
    record = await _watch(client, event_id, clock, end)
    print(flush=True)
    report = await client.report(event_id)
    _say(_baseline_text(report))
    _say(_report_table(report))
    _say(_enterprise_table(report))
    report = await _after_rebound(client, clock, event_id, report, end)
    (out_dir / f"{event_id}.json").write_text(json.dumps(report, indent=2))
    (out_dir / f"{event_id}.csv").write_text(await client.report_csv(event_id))
    perf = report["performance"]
    factor = report["emission_factor"]
    _say(
        f"result:  {record['state']}; delivered {_whole(report['delivered_kwh'])} of "
        f"{_whole(report['requested_kwh'])} kWh ({'-' if perf is None else f'{perf:.1%}'}); "
        f"settlement estimate {_whole(report['settlement'])} {report['currency']} "
        f"({report['settlement_note']})"
    )
    _say(
        f"carbon:  avoided {_whole(report['avoided_co2_kg'])} kg CO2 "
        f"({report['avoided_co2_status']}): {_whole(report['event_reduction_kwh'])} kWh less "
        f"during the event, {_whole(report['rebound_kwh'])} kWh drawn back in the "
        f"{report['rebound_window_h'] or 0:g} h after it, at {factor['kg_co2_per_kwh']} "
        f"kgCO2/kWh ({factor['name']}, {factor['vintage']})"
    )
    _say(f"report:  {out_dir / (event_id + '.json')} and .csv")
    return 0 if record["state"] == "completed" else 1


async def _enter_ledger_entries(client: ParkClient, months: list[str]) -> None:
    """As the park operator: each enterprise's fuels and green power of the history's months."""
    count = 0
    for month in months:
        for enterprise, body in demo_ledger_entries(month).items():
            await client.put_ledger_entries(month, enterprise, body)
            count += 1
    _say(f"ledger:  {count} monthly entries (fuels, green power) for {', '.join(months)}")


def _ledger_table(ledger: dict[str, Any]) -> str:
    """Per enterprise and the park: electricity, energy, carbon and shares over its days."""
    header = ("  month", "scope", "basis", "electricity MWh", "tce", "tCO2", "green", "clean",
              "tCO2/tce")  # fmt: skip
    table = [header]
    for row in sorted(ledger["rows"], key=lambda r: (r["period"], r["scope"] == "park")):
        table.append((
            f"  {row['period']}", row["scope"], row["basis"],
            f"{row['consumption_kwh'] / 1000.0:,.1f}",
            f"{row['total_tce']:.1f}", f"{row['total_co2_t']:.1f}",
            _share(row["green_power_share"]), _share(row["clean_energy_share"]),
            "-" if row["carbon_intensity_t_per_tce"] is None
            else f"{row['carbon_intensity_t_per_tce']:.2f}",
        ))  # fmt: skip
    return "\n".join(aligned(table, lambda i: i >= 3))


#: Days the demo's backtest scores (the last two weeks of its history).
BACKTEST_DAYS = 14
#: The market rule profile the demo's day-ahead bid is declared under (`vpp.market`).
DECLARATION_PROFILE = "gd-spot-unit"


async def _foresight(client: ParkClient) -> None:
    """As the park operator: score the forecast on the history, then issue today's and tomorrow's.

    The backtest runs first so that the bid after it keeps the margin its
    error distribution gives (`[forecast] bid_quantile`).
    """
    backtest = await client.backtest(BACKTEST_DAYS)
    _say(f"forecast: day-ahead backtest over {backtest['first_day']} to {backtest['last_day']} "
         f"(issued at {backtest['issue_time']} the day before): nMAE (bias) by method")  # fmt: skip
    _say(_backtest_table(backtest))
    forecast = await client.issue_forecast()
    methods: dict[str, int] = {}
    for series in forecast["series"]:
        methods[series["method"]] = methods.get(series["method"], 0) + 1
    used = ", ".join(f"{n} {m}" for m, n in sorted(methods.items()))
    issued = datetime.fromisoformat(forecast["issued_at"]).astimezone(
        datetime.fromisoformat(forecast["start"]).tzinfo
    )
    _say(f"forecast: issued {issued:%Y-%m-%d %H:%M} for {forecast['days']} days from "
         f"{forecast['start_day']}: {len(forecast['series'])} series ({used}), "
         f"{len(forecast['sessions'])} expected EV sessions")  # fmt: skip


def _backtest_table(backtest: dict[str, Any]) -> str:
    """Per group: nMAE and bias of the service's forecast, persistence and similar-day."""
    methods = ("forecast", "persistence", "similar_day")
    table: list[tuple[str, ...]] = [("  group", *methods)]
    for group, scores in backtest["scores"].items():
        cells = []
        for method in methods:
            score = scores.get(method)
            if score is None or score["nmae"] is None:
                cells.append("-")
            else:
                cells.append(f"{score['nmae']:.3f} ({score['bias']:+.3f})")
        table.append((f"  {group}", *cells))
    return "\n".join(aligned(table, lambda i: i >= 1))


def _bid_basis_text(bid: dict[str, Any]) -> str:
    """What a bid was built on: the forecast's issue time, each kind's basis, the margin."""
    use = bid.get("forecast") or {}
    kinds = "; ".join(
        f"{kind} " + ", ".join(f"{n} {basis}" for basis, n in sorted(bases.items()))
        for kind, bases in sorted((use.get("methods") or {}).items())
    )
    margin = bid.get("margin") or {}
    held = (
        f"margin at the {margin['quantile']:.0%} quantile: {margin['total_down_kwh']:.0f} kWh "
        f"down / {margin['total_up_kwh']:.0f} kWh up kept back"
        if margin.get("applied") else f"no margin ({margin.get('note', 'none stated')})"
    )  # fmt: skip
    issued = bid.get("forecast_issued_at")
    if issued:
        zone = datetime.fromisoformat(bid["start"]).tzinfo
        issued = f"{datetime.fromisoformat(issued).astimezone(zone):%Y-%m-%d %H:%M}"
    return (f"         on the forecast issued {issued or '(none)'}: "
            f"{kinds or 'live state only'}; {held}")  # fmt: skip


def _declaration_text(declaration: dict[str, Any]) -> str:
    """Per trading unit: its capability and whether it meets the profile, and what misses."""
    lines = [
        f"declare: {declaration['profile']['name']} ({len(declaration['units'])} trading units, "
        f"price cap {declaration['price_cap_cny_per_mwh']:.0f} CNY/MWh): "
        f"{'compliant' if declaration['compliant'] else 'not compliant'}"
    ]
    for unit in declaration["units"]:
        energy = sum(h["energy_mwh"] for h in unit["hours"])
        misses = "; ".join(
            f"{m['rule']} {m['actual']:.2f} vs {m['required']:.2f} {m['unit']}"
            for m in unit["violations"][:2]
        )
        more = len(unit["violations"]) - 2
        lines.append(
            f"  {unit['node']:<14} {len(unit['asset_ids']):>2} assets  {energy:7.2f} MWh/day  "
            f"capability {unit['capability_mw']:.2f} MW  "
            + ("meets the profile" if unit["compliant"] else f"misses: {misses}")
            + (f" (+{more} more)" if more > 0 else "")
            + ("  + 96-point generation curve" if unit.get("generation") else "")
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


async def _show_ledger(client: ParkClient, first: date, last: date, out_dir: Path) -> None:
    """The park's energy-carbon ledger over the simulated days, against the zero-carbon indicators.

    The indicators of the national notice are for whole months and years; over
    a fortnight the demo shows the same figures for its days, the park's size
    class read from its energy scaled to a year.
    """
    ledger = await client.ledger(period="month", first=f"{first}", last=f"{last}")
    (out_dir / "ledger.json").write_text(json.dumps(ledger, indent=2, ensure_ascii=False))
    (out_dir / "ledger.csv").write_text(
        await client.ledger(period="day", first=f"{first}", last=f"{last}", csv=True)
    )
    factor = ledger["electricity_factor"]
    _say(f"ledger:  {first} to {last}, grid factor {factor['name']} {factor['kg_co2_per_kwh']} "
         f"kgCO2/kWh ({factor['vintage']}; {factor['source']})")  # fmt: skip
    _say(_ledger_table(ledger))
    parks = [r for r in ledger["rows"] if r["scope"] == "park"]
    days = (last - first).days + 1
    tce = sum(r["total_tce"] for r in parks)
    co2 = sum(r["total_co2_t"] for r in parks)
    clean = sum(r["clean_tce"] for r in parks)
    size = size_class(tce * 365.0 / days)
    intensity = "-" if tce <= 0 else f"{co2 / tce:.2f}"
    share = None if tce <= 0 else clean / tce
    _say(
        f"zero-carbon indicators over these {days} days ({size.label}, ~{tce * 365 / days:,.0f} "
        f"tce/a): carbon per unit energy {intensity} tCO2/tce (threshold <= "
        f"{size.carbon_intensity_threshold}); clean-energy share {_share(share)} "
        f"(threshold >= {CLEAN_ENERGY_THRESHOLD:.0%})"
    )
    _say(f"ledger:  {out_dir / 'ledger.json'} and ledger.csv (by day)")


def run_demo(settings: Settings, opts: DemoOptions) -> int:
    """Run the demo; returns the process exit code."""
    # pymodbus logs every refused connect while the simulated gateways start;
    # the Modbus adapter already says so once per gateway.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    settings.http.port = opts.port
    settings.ocpp.port = free_port()
    settings.ocpp.auth_secret = settings.ocpp.auth_secret or secrets.token_hex(16)
    # the demo's cycles run on the compressed clock: one per simulated minute
    settings.control.period_s = 60.0
    settings.control.lease_ttl_s = 10.0
    # poll batteries every real second: at 120x that is every 2 simulated minutes
    settings.modbus.poll_interval_s = min(settings.modbus.poll_interval_s, 1.0)
    # the demo runs its backtest itself, as the park operator, before its bid
    settings.forecast.backtest_days = 0
    with contextlib.ExitStack() as stack:
        # the report stays beside the state so the user can read it afterwards
        out_dir = opts.out_dir or settings.state_dir / "demo-reports"
        out_dir.mkdir(parents=True, exist_ok=True)
        if opts.mqtt:
            host, _, port = opts.mqtt.partition(":")
            settings.mqtt.host, settings.mqtt.port = host, int(port or 1883)
        else:
            broker = stack.enter_context(
                MosquittoServer(data_dir=Path(stack.enter_context(tempfile.TemporaryDirectory())))
            )
            settings.mqtt.host, settings.mqtt.port = broker.host, broker.port
            _say(f"broker:  private mosquitto on {broker.host}:{broker.port}")
        if not settings.redis.url:
            # a fresh private Redis for every demo run: no state from earlier runs
            settings.state.dir = stack.enter_context(tempfile.TemporaryDirectory())
        redis_url = stack.enter_context(redis_endpoint(settings))
        _say(f"redis:   {redact_url(redis_url)}")
        return asyncio.run(_run(settings, opts, redis_url, out_dir))
