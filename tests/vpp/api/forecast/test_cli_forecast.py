"""``vpp forecast backtest`` and ``vpp forecast refresh`` against the API on loopback."""

from __future__ import annotations

import asyncio

import pytest

from tests.vpp.conftest import ApiClient, TokenFactory
from tests.vpp.samples import PARK
from vpp.cli import backtest_text, build_parser

pytestmark = pytest.mark.usefixtures("park")


async def _vpp(client: ApiClient, token: str, *args: str) -> int:
    """Run ``vpp forecast ...`` (parsed as the CLI does) in a thread: the API runs on this loop."""
    base = str(client.make_url("")).rstrip("/")
    argv = ["forecast", *args, "--park", PARK, "--url", base, "--token", token]
    parsed = build_parser().parse_args(argv)
    code: int = await asyncio.to_thread(parsed.run, parsed)
    return code


async def _operator(auth: TokenFactory) -> str:
    return (await auth("park_operator", PARK))["Authorization"].removeprefix("Bearer ")


async def test_vpp_forecast_backtest_prints_a_table_per_group(
    client: ApiClient, auth: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _vpp(client, await _operator(auth), "backtest", "--days", "3") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"park {PARK}: day-ahead backtest ")
    assert out[0].endswith("issued 09:00 the day before")
    assert out[1].split() == [
        "group", "forecast", "nMAE", "forecast", "bias", "persistence", "nMAE",
        "persistence", "bias", "similar_day", "nMAE", "similar_day", "bias",
    ]  # fmt: skip
    assert {line.split()[0] for line in out[2:5]} == {"flexible_load", "meter", "park"}
    assert out[5].startswith("day-ahead: each of ")


async def test_vpp_forecast_backtest_says_what_is_wrong_in_a_line(
    client: ApiClient, auth: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _vpp(client, await _operator(auth), "backtest", "--days", "0") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("vpp: 422 ")
    assert err[1].startswith("  days: ")


async def test_vpp_forecast_refresh_prints_a_line_per_series(
    client: ApiClient, auth: TokenFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _vpp(client, await _operator(auth), "refresh") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"park {PARK}: forecast issued at ")
    assert [line.split()[:3] for line in out[1:]] == [
        ["load-1", "flexible_load", "model"],
        ["load-2", "flexible_load", "model"],
        ["meter-a", "meter", "model"],
    ]


def test_backtest_text_shows_percentages_and_dashes() -> None:
    body = {
        "park": "p", "first_day": "2026-11-16", "last_day": "2026-11-29", "issue_time": "09:00",
        "scores": {"park": {"forecast": {"nmae": 0.0372, "bias": -0.004, "intervals": 9},
                            "persistence": {"nmae": None, "bias": None, "intervals": 0}}},
        "note": "n",
    }  # fmt: skip
    lines = backtest_text(body).splitlines()
    assert lines[2].split() == ["park", "3.7", "%", "-0.4", "%", "-", "-", "-", "-"]
