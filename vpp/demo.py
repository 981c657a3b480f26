"""`vpp demo`: a simulated park run end to end on a compressed clock.

What it does, in order:

1. uses the configured Redis, or starts a private ``redis-server`` (AOF on);
   uses the MQTT broker given with ``--mqtt``, or starts a private ``mosquitto``;
2. starts the service (API, device supervisor, control loops) on a clock that
   runs ``--time-scale`` times faster than real time, and serves ``/metrics``;
3. enrolls the demo park from ``config/demo-park.toml`` and starts its devices
   as simulators speaking the real protocols (Modbus TCP/SunSpec batteries,
   OCPP 2.0.1/2.1 chargers, MQTT loads) on loopback;
4. builds a day-ahead bid from the live flexibility;
5. acts as the grid operator: sends a 2-hour peak-shaving event (inside what
   the park can deliver) through the REST API, and shows target versus
   delivered by asset kind while the park delivers it;
6. prints the event report (delivered, performance, settlement estimate,
   avoided CO2), writes it as JSON and CSV, and exits 0 when the event ran to
   completion.
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from adapters.sim.park import SimBattery, load_park_toml, run_park
from vpp.api import create_app
from vpp.auth import Role, TokenStore
from vpp.clock import Clock
from vpp.metrics import Metrics
from vpp.model import ModbusConnection
from vpp.parkfile import enroll_park, load_park_file
from vpp.runtime import runtime_cleanup_ctx
from vpp.servers import MosquittoServer, free_port, port_open
from vpp.service import open_state, redis_endpoint
from vpp.settings import Settings
from vpp.supervisor import charger_password

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


def _free_modbus_ports(spec: Any) -> dict[tuple[str, int], int]:
    """Move simulated Modbus endpoints whose port is taken to free ports."""
    moved: dict[tuple[str, int], int] = {}
    for i, battery in enumerate(spec.batteries):
        key = (battery.host, battery.port)
        if key not in moved:
            moved[key] = free_port() if port_open(battery.host, battery.port) else battery.port
        spec.batteries[i] = SimBattery(battery.host, moved[key], battery.spec)
    return moved


def _remap_connections(park_file: Any, moved: dict[tuple[str, int], int]) -> Any:
    """The park file with the enrolled Modbus ports the simulators really listen on."""
    assets = []
    for asset in park_file.assets:
        conn = asset.connection
        if isinstance(conn, ModbusConnection):
            new_port = moved.get((conn.host, conn.port), conn.port)
            asset = asset.model_copy(
                update={"connection": conn.model_copy(update={"port": new_port})}
            )
        assets.append(asset)
    return dataclasses.replace(park_file, assets=tuple(assets))


class _Grid:
    """The grid operator's side of the demo: an HTTP client with its tokens."""

    def __init__(self, base: str, park: str, grid_token: str, viewer_token: str) -> None:
        self.base, self.park = base, park
        self.grid = {"Authorization": f"Bearer {grid_token}"}
        self.viewer = {"Authorization": f"Bearer {viewer_token}"}
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, *, grid: bool = True, **kw: Any) -> Any:
        url = f"{self.base}/v1/parks/{self.park}{path}"
        headers = self.grid if grid else self.viewer
        async with self.http.request(method, url, headers=headers, **kw) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {body}")
            return body

    async def by_kind(self) -> dict[str, float]:
        async with self.http.get(f"{self.base}/metrics") as resp:
            text = await resp.text()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name == "vpp_delivered_kw":
                for sample in family.samples:
                    if sample.labels.get("park") == self.park:
                        out[sample.labels["kind"]] = sample.value
        return out


async def _wait_for_flexibility(grid: _Grid, expected: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    env: dict[str, Any] = {}
    while time.monotonic() < deadline:
        env = await grid.call("GET", "/flexibility?intervals=8", grid=False)
        if env["assets_included"] >= expected:
            break
        await asyncio.sleep(0.5)
    return env


def _fmt(v: float | None) -> str:
    return "      -" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:8.1f}"


def _whole(v: float | None) -> str:
    # a report's totals are null until an interval is measured
    return "-" if v is None else f"{v:.0f}"


async def _watch(grid: _Grid, event_id: str, clock: Clock, until: datetime) -> dict[str, Any]:
    """Show the event live until it is over; return the final record."""
    shown_state = ""
    last_line = 0.0
    record: dict[str, Any] = {}
    tty = sys.stdout.isatty()
    while True:
        record = (await grid.call("GET", f"/events/{event_id}", grid=False))["event"]
        state = record["state"]
        if state != shown_state:
            _say(f"  event {event_id}: {state}")
            shown_state = state
        if state in ("completed", "cancelled", "failed"):
            return record
        if state == "active" and time.monotonic() - last_line > (0.5 if tty else 3.0):
            start = datetime.fromisoformat(record["start"])
            k = min(int((clock.now() - start).total_seconds() // record["interval_s"]),
                    len(record["target_kw"]) - 1)  # fmt: skip
            kinds = await grid.by_kind()
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


async def _run(settings: Settings, opts: DemoOptions, redis_url: str, out_dir: Path) -> int:
    clock = Clock(scale=opts.time_scale)
    metrics = Metrics()
    state = open_state(settings, redis_url, metrics)
    app = create_app(settings, state, metrics=metrics, clock=clock)
    app.cleanup_ctx.append(runtime_cleanup_ctx(with_ven=False))
    runner = web.AppRunner(app, handle_signals=False)
    sim_task: asyncio.Task[None] | None = None
    grid: _Grid | None = None
    try:
        park_file = load_park_file(opts.park_file)
        spec = load_park_toml(opts.park_file)
        park_file = _remap_connections(park_file, _free_modbus_ports(spec))
        secret = settings.ocpp.auth_secret
        spec.chargers = [
            dataclasses.replace(c, password=charger_password(secret, c.cp_id))
            for c in spec.chargers
        ]
        park = park_file.park.id
        await enroll_park(state, park_file)
        await runner.setup()
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        tokens = TokenStore(state)
        grid = _Grid(
            base, park,
            await tokens.create(Role.GRID_OPERATOR, [park], name="demo-grid-operator"),
            await tokens.create(Role.VIEWER, [park], name="demo-viewer"),
        )  # fmt: skip
        _say(f"service: {base}  (metrics {base}/metrics, OpenAPI {base}/openapi.json)")
        sim_now = f"{clock.now():%Y-%m-%d %H:%M}"
        _say(f"clock:   {opts.time_scale:g}x real time; simulated now {sim_now} UTC")
        sim_started = asyncio.Event()
        sim_task = asyncio.create_task(
            run_park(
                spec,
                time_scale=opts.time_scale,
                mqtt_host=settings.mqtt.host,
                mqtt_port=settings.mqtt.port,
                mqtt_root=settings.mqtt.root,
                csms_url=f"ws://127.0.0.1:{settings.ocpp.port}/ocpp/",
                started=sim_started,
            ),
            name="simulated-park",
        )
        waiter = asyncio.create_task(sim_started.wait())
        await asyncio.wait({waiter, sim_task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if sim_task.done():
            sim_task.result()  # raises what stopped the simulators
        if not sim_started.is_set():
            raise RuntimeError("the simulated park did not start in 30 s")
        simulated = len(spec.batteries) + len(spec.chargers) + len(spec.loads)
        _say(f"park:    {park}: {len(park_file.assets)} assets enrolled, {simulated} simulated "
             f"({len(spec.batteries)} Modbus batteries, {len(spec.chargers)} OCPP chargers, "
             f"{len(spec.loads)} MQTT loads)")  # fmt: skip
        env = await _wait_for_flexibility(grid, int(simulated * 0.8), 30.0)
        down_now, up_now = env["down_kw"][0], env["up_kw"][0]
        _say(f"live:    {env['assets_included']} assets flexible now; down {down_now:.0f} kW, "
             f"up {up_now:.0f} kW in the current interval")  # fmt: skip

        now = clock.now()
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        day = (await grid.call("POST", "/bids", json={
            "id": f"day-ahead-{tomorrow:%Y%m%d}", "start": tomorrow.isoformat(),
            "rules": {"min_capacity_kw": 100, "min_duration_minutes": 60},
        }))["bid"]  # fmt: skip
        peak = max(day["down"]["quantity_kw"])
        _say(f"bid:     day-ahead {day['id']}: peak down {peak:.0f} kW, "
             f"{day['total_down_kwh']:.0f} kWh down / {day['total_up_kwh']:.0f} kWh up "
             f"over the day, jointly deliverable={day['jointly_deliverable']} "
             f"({day['solve_seconds']} s)")  # fmt: skip

        step = 15
        # the bid took clock time: the event starts at the next quarter hour from *now*
        start = clock.now() + timedelta(minutes=20)
        start = start.replace(second=0, microsecond=0) + timedelta(minutes=(-start.minute) % step)
        n = opts.event_minutes // step
        window = (await grid.call("POST", "/bids", json={
            "id": f"event-window-{start:%H%M}", "start": start.isoformat(), "intervals": n,
            "rules": {"min_capacity_kw": 0, "min_duration_minutes": 0},
            "flat_capacity": True,
        }))["bid"]  # fmt: skip
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
        created = await grid.call("POST", "/events", json={
            "id": event_id, "kind": "peak_shaving", "start": start.isoformat(),
            "target_kw": target, "duration_minutes": opts.event_minutes,
            "bid_id": window["id"],
        })  # fmt: skip
        _say(
            f"         acknowledged in {1000 * (time.monotonic() - sent):.0f} ms: "
            f"{created['event']['state']}"
        )
        end = start + timedelta(minutes=opts.event_minutes)
        record = await _watch(grid, event_id, clock, end)
        print(flush=True)
        report = await grid.call("GET", f"/events/{event_id}/report", grid=False)
        async with grid.http.get(
            f"{base}/v1/parks/{park}/events/{event_id}/report?format=csv", headers=grid.viewer
        ) as resp:
            csv_text = await resp.text()
        (out_dir / f"{event_id}.json").write_text(json.dumps(report, indent=2))
        (out_dir / f"{event_id}.csv").write_text(csv_text)
        _say(_report_table(report))
        perf = report["performance"]
        _say(
            f"result:  {record['state']}; delivered {_whole(report['delivered_kwh'])} of "
            f"{_whole(report['requested_kwh'])} kWh ({'-' if perf is None else f'{perf:.1%}'}); "
            f"settlement estimate {_whole(report['settlement'])} {report['currency']} "
            f"({report['settlement_note']}); avoided {_whole(report['avoided_co2_kg'])} kg CO2 "
            f"(factor: {report['emission_factor_source']})"
        )
        _say(f"report:  {out_dir / (event_id + '.json')} and .csv")
        return 0 if record["state"] == "completed" else 1
    finally:
        if grid is not None:
            await grid.close()
        if sim_task is not None:
            sim_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sim_task
        await runner.cleanup()
        await state.aclose()


def run_demo(settings: Settings, opts: DemoOptions) -> int:
    """Run the demo; returns the process exit code."""
    # pymodbus logs every refused connect while the simulated gateways start;
    # the Modbus adapter already says so once per gateway.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    settings.http.port = opts.port
    settings.ocpp.port = free_port()
    settings.ocpp.auth_secret = settings.ocpp.auth_secret or secrets.token_hex(16)
    # the demo's cycles run on the compressed clock: one per simulated minute
    settings.control.period = 60.0
    settings.control.lease_ttl = 10.0
    # poll batteries every real second: at 120x that is every 2 simulated minutes
    settings.modbus.poll_interval = min(settings.modbus.poll_interval, 1.0)
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
        _say(f"redis:   {redis_url}")
        return asyncio.run(_run(settings, opts, redis_url, out_dir))
