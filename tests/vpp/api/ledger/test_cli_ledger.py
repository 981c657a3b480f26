"""``vpp ledger`` against the API on loopback: the month's summary, CSV, one-line errors."""

from __future__ import annotations

import asyncio

import pytest

from tests.vpp.api.ledger.conftest import CLOSED_MONTH
from tests.vpp.conftest import ApiClient
from tests.vpp.samples import PARK
from vpp.cli import build_parser
from vpp.servers import free_port

pytestmark = pytest.mark.usefixtures("history")


async def _vpp(client: ApiClient, token: str, *args: str, url: str | None = None) -> int:
    """Run ``vpp ledger`` (parsed as the CLI does) in a thread: the API runs on this loop."""
    base = url or str(client.make_url("")).rstrip("/")
    argv = ["ledger", "--park", PARK, "--url", base, "--token", token, *args]
    parsed = build_parser().parse_args(argv)
    code: int = await asyncio.to_thread(parsed.run, parsed)
    return code


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_vpp_ledger_prints_the_months_summary(
    client: ApiClient, viewer: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _vpp(client, _token(viewer), "--from", CLOSED_MONTH, "--to", CLOSED_MONTH) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"park {PARK}, {CLOSED_MONTH}-01 to ")
    assert "mee-2023-southern 0.4042 kgCO2/kWh" in out[0]
    assert out[1].split()[:4] == ["scope", "period", "basis", "coverage"]
    castings = next(line for line in out if line.startswith("castings"))
    assert castings.split()[:3] == ["castings", CLOSED_MONTH, "revenue_meter"]
    assert "2,880.0" in castings
    assert any(line.startswith("park ") and CLOSED_MONTH in line for line in out[2:])


async def test_vpp_ledger_csv(
    client: ApiClient, viewer: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--from", CLOSED_MONTH, "--to", CLOSED_MONTH, "--enterprise", "castings", "--csv")
    assert await _vpp(client, _token(viewer), *args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("scope,name,period,")
    assert out[1].startswith("castings,Guangzhou Precision Castings,")


async def test_vpp_ledger_says_what_is_wrong_in_a_line(
    client: ApiClient, viewer: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _vpp(client, _token(viewer), "--from", "2026-02-30") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("vpp: 422 invalid input: from:")
    assert err[1].startswith("  from: ")
    away = f"http://127.0.0.1:{free_port()}"
    assert await _vpp(client, _token(viewer), url=away) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"vpp: cannot reach the service at {away}")
