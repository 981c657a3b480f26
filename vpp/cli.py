"""The ``vpp`` command line (also ``python -m vpp``).

Subcommands are small functions: ``_add_<name>(subparsers)`` declares one and
sets ``run`` to a ``_run_<name>(args) -> int``. To add one, write both (as
``_add_simulate`` and ``_run_simulate`` do) and list the adder in
``COMMANDS``. Logging is configured here and nowhere else in ``vpp`` (the
demo only quiets pymodbus's connect noise).

``meter import``, ``history``, ``ledger`` and ``forecast`` speak to a running service over
its HTTP API with a token (``--token`` or ``VPP_TOKEN``), so the import is
authorised and logged under the token's principal like any other.

Exit codes: 0 success, 1 failure (``check``: not healthy; ``token revoke``:
no such token; ``meter import``, ``history``, ``ledger``, ``forecast``: the service
refused, the problem printed, or could not be reached), 2 usage or configuration error
(``meter import``: a file that cannot be read, or looks like JSON and is
not), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.config
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from adapters.sim.park import run_park
from vpp import __version__
from vpp.auth import Role, TokenStore
from vpp.client import ApiError, ParkClient
from vpp.demo import DemoOptions, run_demo
from vpp.errors import InvalidInput, SettingsError, StateError
from vpp.ledger.export import aligned, ledger_text
from vpp.ledger.rows import Ledger
from vpp.parkfile import enroll_park, load_park_file, simulator_spec
from vpp.servers import ServerError
from vpp.service import open_state, redis_endpoint, serve
from vpp.settings import Settings, redact_url
from vpp.state import State

__all__ = ["COMMANDS", "build_parser", "main"]

log = logging.getLogger("vpp.cli")

_Subparsers = Any  # argparse's _SubParsersAction is private
DEFAULT_PARK_FILE = Path("config/demo-park.toml")


def _configure_logging(level: str) -> None:
    plain = {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    stderr = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": plain},
            "handlers": {"stderr": stderr},
            "loggers": {"vpp": {"level": level.upper()}, "aiohttp.access": {"level": "WARNING"}},
            "root": {"handlers": ["stderr"], "level": "WARNING"},
        }
    )


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.load(args.config)
    if getattr(args, "port", None) is not None:
        settings.http.port = args.port
    return settings


def _with_state(settings: Settings, work: Callable[[State], Any]) -> Any:
    """Run ``work(state)`` against the configured (or private) Redis."""

    async def run(url: str) -> Any:
        state = open_state(settings, url)
        try:
            return await work(state)
        finally:
            await state.aclose()

    with redis_endpoint(settings) as url:
        return asyncio.run(run(url))


# -- serve -----------------------------------------------------------------


def _add_serve(sub: _Subparsers) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API until SIGTERM")
    p.add_argument("--port", type=int, help="override http.port")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with redis_endpoint(settings) as url:
        asyncio.run(serve(settings, url, duration=args.duration))
    return 0


# -- check -----------------------------------------------------------------


def _add_check(sub: _Subparsers) -> None:
    p = sub.add_parser("check", help="exit 0 when the service and Redis answer, 1 otherwise")
    p.add_argument("--url", help="the service's base URL (default: from http.host/http.port)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(run=_run_check)


async def _check(settings: Settings, base_url: str, seconds: float) -> list[str]:
    problems: list[str] = []
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(base_url + "/readyz") as resp,
        ):
            if resp.status != 200:
                problems.append(f"{base_url}/readyz answered {resp.status}: {await resp.text()}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        problems.append(f"the service at {base_url} does not answer: {exc or type(exc).__name__}")
    if settings.redis.url:
        state = open_state(settings, settings.redis.url)
        try:
            if not await state.ping():
                problems.append(f"Redis at {redact_url(settings.redis.url)} does not answer")
        finally:
            await state.aclose()
    return problems


def _base_url(settings: Settings, url: str | None) -> str:
    """The service's base URL: ``url``, else the one ``http.host``/``http.port`` serve."""
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::", "") else settings.http.host
    return (url or f"http://{host}:{settings.http.port}").rstrip("/")


def _run_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    base_url = _base_url(settings, args.url)
    problems = asyncio.run(_check(settings, base_url, args.timeout))
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"OK {base_url} and Redis answer")
    return 0


# -- token -----------------------------------------------------------------


def _add_token(sub: _Subparsers) -> None:
    p = sub.add_parser("token", help="manage API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="create a token and print its secret (shown once)")
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--park", action="append", default=[], help="a park it may touch; * for all")
    c.add_argument("--name", default="", help="a label for logs")
    c.set_defaults(run=_run_token_create)
    r = tsub.add_parser("revoke", help="revoke a token given its secret")
    r.add_argument("secret")
    r.set_defaults(run=_run_token_revoke)


def _run_token_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    secret = _with_state(
        settings, lambda state: TokenStore(state).create(args.role, args.park, args.name)
    )
    print(secret)
    return 0


def _run_token_revoke(args: argparse.Namespace) -> int:
    existed = _with_state(_settings(args), lambda state: TokenStore(state).revoke(args.secret))
    print("revoked" if existed else "no such token")
    return 0 if existed else 1


# -- enroll ----------------------------------------------------------------


def _add_enroll(sub: _Subparsers) -> None:
    p = sub.add_parser("enroll", help="enroll a park file's assets (idempotent)")
    p.add_argument("--file", type=Path, required=True, help="a park TOML file")
    p.set_defaults(run=_run_enroll)


def _run_enroll(args: argparse.Namespace) -> int:
    settings = _settings(args)
    park_file = load_park_file(args.file)
    result = _with_state(settings, lambda state: enroll_park(state, park_file))
    print(
        f"park {park_file.park.id}: {len(result.created)} enrolled, "
        f"{len(result.existing)} already enrolled"
    )
    return 0


# -- meter import, history (over the HTTP API, with a token) ----------------


def _add_api_client_args(
    p: argparse.ArgumentParser, role: Role, *, park_required: bool = True
) -> None:
    if park_required:
        p.add_argument("--park", required=True, help="the park's id")
    else:
        p.add_argument(
            "--park", default=os.environ.get("VPP_PARK"),
            help=f"the park's id (default: $VPP_PARK, else the park of {DEFAULT_PARK_FILE})",
        )  # fmt: skip
    p.add_argument("--url", help="the service's base URL (default: from http.host/http.port)")
    p.add_argument("--token", default=os.environ.get("VPP_TOKEN"), help="default: $VPP_TOKEN")
    p.add_argument("--role", default=role.value, choices=[r.value for r in Role],
                   help=f"the token's role (default {role.value})")  # fmt: skip


def _park_or_default(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with ``--park`` defaulted to the park of `DEFAULT_PARK_FILE` when not given.

    Raises:
        SettingsError: no ``--park`` and the file cannot be read.
    """
    if args.park is None:
        try:
            args.park = load_park_file(DEFAULT_PARK_FILE).park.id
        except (SettingsError, InvalidInput) as exc:
            raise SettingsError(f"no park: give --park or set VPP_PARK ({exc})") from None
    return args


def _add_meter(sub: _Subparsers) -> None:
    p = sub.add_parser("meter", help="a meter's metering data")
    msub = p.add_subparsers(dest="meter_command", required=True)
    i = msub.add_parser(
        "import",
        help="import days of 96 interval energies (kWh) from a CSV or JSON file",
        description="PUT /v1/parks/{park}/meters/{meter}/readings; a file holding a JSON "
        'object goes as JSON ({"days": [{"date": ..., "energy_kwh": [96 numbers]}]}), '
        "anything else as text/csv (header date,00:15,...,24:00, a row per day).",
    )
    i.add_argument("file", type=Path)
    i.add_argument("--meter", required=True, help="the meter's id")
    _add_api_client_args(i, Role.PARK_OPERATOR)
    i.set_defaults(run=_run_meter_import)


def _client_call(args: argparse.Namespace, work: Callable[[ParkClient], Any]) -> Any:
    """Run ``work(client)`` against the service with the token of ``--token``."""
    if not args.token:
        raise SettingsError("no token: give --token or set VPP_TOKEN")
    base_url = _base_url(_settings(args), args.url)

    async def run() -> Any:
        async with ParkClient(base_url, args.park, {args.role: args.token}) as client:
            return await work(client)

    try:
        return asyncio.run(run())
    except (TimeoutError, aiohttp.ClientConnectionError) as exc:
        raise _Unreachable(f"cannot reach the service at {base_url} ({exc or type(exc).__name__});"
                           " is it running? (--url)") from None  # fmt: skip


class _Unreachable(Exception):
    """The service did not answer (exit 1, in one line)."""


def _readings_body(path: Path) -> str | Any:
    """A readings file's body: JSON when it holds a JSON object, else CSV text.

    Raises:
        SettingsError: the file cannot be read, or looks like JSON and is not.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    if not text.lstrip().startswith(("{", "[")):
        return text  # the wide CSV export (date,00:15,...,24:00)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path} is not valid JSON: {exc}") from None


def _api_failed(exc: ApiError) -> int:
    body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {"detail": str(exc.body)}
    print(f"vpp: {exc.status} {body.get('detail', '')}", file=sys.stderr)
    for error in body.get("errors") or []:
        print(f"  {error['field']}: {error['message']}", file=sys.stderr)
    return 1


def _api_command(
    args: argparse.Namespace, work: Callable[[ParkClient], Any], say: Callable[[Any], str]
) -> int:
    """Run ``work`` against the service and print ``say(answer)``: 0.

    The service's refusal (its problem, a line per bad field) or a service
    that does not answer is printed to stderr instead: 1.
    """
    try:
        answer = _client_call(args, work)
    except ApiError as exc:
        return _api_failed(exc)
    except _Unreachable as exc:
        print(f"vpp: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(say(answer))
    return 0


def _run_meter_import(args: argparse.Namespace) -> int:
    body = _readings_body(args.file)

    def say(result: dict[str, Any]) -> str:
        days = len(result["stored"])
        return (
            f"meter {args.meter}: {days} day{'' if days == 1 else 's'} stored "
            f"({len(result['replaced'])} replaced, {len(result['unchanged'])} unchanged), "
            f"{result['intervals']} intervals\n"
        )

    return _api_command(args, lambda client: client.import_readings(args.meter, body), say)


def _add_history(sub: _Subparsers) -> None:
    p = sub.add_parser("history", help="print a series' interval history as CSV")
    p.add_argument("--series", default="park", help="an asset or meter id, or park (default)")
    p.add_argument("--from", dest="first", type=date.fromisoformat, help="first local day")
    p.add_argument("--to", dest="last", type=date.fromisoformat, help="last local day")
    p.add_argument("--resolution", default="1h", choices=["15m", "1h", "1d"])
    _add_api_client_args(p, Role.VIEWER)
    p.set_defaults(run=_run_history)


def _run_history(args: argparse.Namespace) -> int:
    return _api_command(
        args,
        lambda client: client.history(
            args.series, first=args.first, last=args.last, resolution=args.resolution, csv=True
        ),
        str,
    )


def _add_ledger(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "ledger",
        help="print the park's energy-carbon ledger (default: this month, by enterprise)",
        description="GET /v1/parks/{park}/ledger: per enterprise and for the park its "
        "electricity, tce, tCO2, green-power and clean-energy shares, and the park's "
        "zero-carbon indicators against their thresholds; --csv prints a line per row.",
    )
    p.add_argument("--period", default="month", choices=["interval", "day", "month", "year"])
    p.add_argument("--from", dest="first", help="YYYY-MM-DD, YYYY-MM or YYYY (default: to's month)")
    p.add_argument("--to", dest="last", help="likewise (default: the park's current month)")
    p.add_argument("--enterprise", help="only this enterprise's rows")
    p.add_argument("--csv", action="store_true", help="print the ledger as CSV")
    _add_api_client_args(p, Role.VIEWER)
    p.set_defaults(run=_run_ledger)


def _run_ledger(args: argparse.Namespace) -> int:
    def say(body: Any) -> str:
        return str(body) if args.csv else ledger_text(Ledger.model_validate(body))

    return _api_command(
        args,
        lambda client: client.ledger(
            period=args.period, first=args.first, last=args.last,
            enterprise=args.enterprise, csv=args.csv,
        ),
        say,
    )  # fmt: skip


def _add_forecast(sub: _Subparsers) -> None:
    p = sub.add_parser("forecast", help="the park's load and meter forecast, and its backtest")
    fsub = p.add_subparsers(dest="forecast_command", required=True)
    b = fsub.add_parser(
        "backtest",
        help="backtest the day-ahead forecast over the last N days and print its scores",
        description="POST /v1/parks/{park}/forecast/backtest?days=N: each of the last N "
        "complete days forecast at [forecast] issue_time the day before; per asset kind and "
        "for the park, nMAE and bias of the forecast, of persistence (the last complete day) "
        "and of the similar-day profile.",
    )
    b.add_argument("--days", type=int, default=14, help="days scored, 1-60 (default 14)")
    _add_api_client_args(b, Role.PARK_OPERATOR, park_required=False)
    b.set_defaults(run=_run_forecast_backtest)
    r = fsub.add_parser(
        "refresh",
        help="issue the park's forecast now and print a line per series",
        description="POST /v1/parks/{park}/forecast: the forecast of every load and meter "
        "(and of the kinds other forecasters cover) from its history, stored as the latest.",
    )
    _add_api_client_args(r, Role.PARK_OPERATOR, park_required=False)
    r.set_defaults(run=_run_forecast_refresh)


def backtest_text(body: Mapping[str, Any]) -> str:
    """A backtest answer as a table: per group, nMAE and bias of each method (%), and its note."""
    methods = ("forecast", "persistence", "similar_day")
    table = [["group", *(f"{m} {x}" for m in methods for x in ("nMAE", "bias"))]]
    for group, scores in body["scores"].items():
        row = [group]
        for m in methods:
            s = scores.get(m) or {}
            for x in ("nmae", "bias"):
                v = s.get(x)
                row.append(
                    "-" if v is None else f"{v * 100:+.1f} %" if x == "bias" else f"{v * 100:.1f} %"
                )
        table.append(row)
    head = (
        f"park {body['park']}: day-ahead backtest {body['first_day']}..{body['last_day']}, "
        f"issued {body['issue_time']} the day before\n"
    )
    return head + "\n".join(aligned(table, lambda i: i > 0)) + f"\n{body['note']}\n"


def _run_forecast_backtest(args: argparse.Namespace) -> int:
    args = _park_or_default(args)
    return _api_command(args, lambda client: client.backtest(args.days), backtest_text)


def _run_forecast_refresh(args: argparse.Namespace) -> int:
    def say(body: dict[str, Any]) -> str:
        lines = [
            f"park {body['park']}: forecast issued at {body['issued_at']}, {body['days']} days "
            f"of {body['interval_minutes']}-minute intervals from {body['start']}"
        ]
        for s in body["series"]:
            known = [v for v in s["kw"] if v is not None]
            mean = f"{sum(known) / len(known):.1f} kW mean" if known else "no values"
            lines.append(f"  {s['series']:<20} {s['kind']:<14} {s['method']:<12} {mean}")
        return "\n".join(lines) + "\n"

    return _api_command(_park_or_default(args), lambda client: client.issue_forecast(), say)


# -- demo ------------------------------------------------------------------


def _add_demo(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="run a simulated park end to end: bid, a 2-hour peak-shaving event, the report",
    )
    p.add_argument("--park-file", type=Path, default=DEFAULT_PARK_FILE)
    p.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    p.add_argument("--time-scale", type=float, default=120.0, help="clock speed-up")
    p.add_argument("--event-minutes", type=int, default=120, help="event length (simulated)")
    p.add_argument("--mqtt", help="HOST:PORT of a broker to use instead of a private one")
    p.add_argument("--out", type=Path, help="folder for the report (default: state/demo-reports)")
    p.add_argument(
        "--serve-only",
        action="store_true",
        help="only serve the example park enrolled from config/ (no simulation)",
    )
    p.add_argument("--duration", type=float, help="with --serve-only: stop after N seconds")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    if not args.serve_only:
        options = DemoOptions(
            park_file=args.park_file,
            time_scale=args.time_scale,
            event_minutes=args.event_minutes,
            port=args.port,
            mqtt=args.mqtt,
            out_dir=args.out,
        )
        return run_demo(_settings(args), options)
    return _serve_example(args)


def _serve_example(args: argparse.Namespace) -> int:
    settings = _settings(args)
    park_file = load_park_file(args.park_file)
    park = park_file.park.id

    async def ready(base_url: str, state: State) -> None:
        result = await enroll_park(state, park_file)
        token = await TokenStore(state).create(Role.PARK_OPERATOR, [park], name="demo-operator")
        print(
            f"\nDemo park {park!r} ({park_file.park.name}): {len(park_file.assets)} assets "
            f"({len(result.created)} enrolled now, {len(result.existing)} already there).\n"
            f"  API:      {base_url}/v1/parks/{park}/assets\n"
            f"  OpenAPI:  {base_url}/openapi.json   metrics: {base_url}/metrics\n"
            f"  operator token (shown once): {token}\n\n"
            f"  curl -H 'Authorization: Bearer {token}' {base_url}/v1/parks/{park}\n\n"
            "Ctrl-C stops it.",
            flush=True,
        )

    with redis_endpoint(settings) as url:
        asyncio.run(serve(settings, url, duration=args.duration, on_ready=ready))
    return 0


# -- simulate --------------------------------------------------------------


def _add_simulate(sub: _Subparsers) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a park file's devices as simulators (Modbus, OCPP, MQTT) until Ctrl-C",
    )
    p.add_argument("--park", type=Path, default=DEFAULT_PARK_FILE, help="a park TOML file")
    p.add_argument("--time-scale", type=float, default=1.0, help="simulated s per real s")
    p.add_argument("--csms-url", help="OCPP endpoint (default ws://{ocpp.host}:{ocpp.port}/ocpp/)")
    p.set_defaults(run=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    """Start one simulated device per asset of the park file, speaking its real protocol.

    Chargers log in with the password the service expects:
    ``charger_password(ocpp.auth_secret, charge point id)``.
    """
    settings = _settings(args)
    spec = simulator_spec(load_park_file(args.park), ocpp_secret=settings.ocpp.auth_secret)
    csms = args.csms_url or f"ws://{settings.ocpp.host}:{settings.ocpp.port}/ocpp/"
    print(
        f"simulating park {spec.park_id}: {len(spec.batteries)} Modbus batteries, "
        f"{len(spec.chargers)} OCPP chargers -> {csms}, {len(spec.loads)} MQTT loads -> "
        f"{settings.mqtt.host}:{settings.mqtt.port} (Ctrl-C stops)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_park(
                spec,
                time_scale=args.time_scale,
                mqtt_host=settings.mqtt.host,
                mqtt_port=settings.mqtt.port,
                mqtt_root=settings.mqtt.root,
                csms_url=csms,
            )
        )
    return 0


#: Every subcommand's adder, in help order.
COMMANDS: list[Callable[[_Subparsers], None]] = [
    _add_serve,
    _add_demo,
    _add_simulate,
    _add_check,
    _add_token,
    _add_enroll,
    _add_meter,
    _add_history,
    _add_ledger,
    _add_forecast,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of ``COMMANDS``."""
    parser = argparse.ArgumentParser(prog="vpp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vpp {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("VPP_CONFIG"),
        help="settings TOML (default: $VPP_CONFIG; VPP_* variables override it)",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (log.level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vpp`` command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        level = args.log_level or Settings.load(args.config).log.level
        _configure_logging(level)
        code: int = args.run(args)
        return code
    except (SettingsError, InvalidInput) as exc:
        print(f"vpp: configuration error: {exc}", file=sys.stderr)
        return 2
    except (ServerError, StateError) as exc:
        print(f"vpp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
