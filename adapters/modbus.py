"""Modbus TCP / SunSpec adapter for batteries (pymodbus 3.16).

One adapter serves every battery behind one host (a battery, or a gateway
with many unit ids) over a few TCP connections (``connections``; a Modbus
client carries one request at a time, a gateway takes several clients). On
connecting it finds the ``SunS`` marker (40000, then 0, then 50000) per unit,
walks the model list, remembers where models 802 (battery) and 704 (DER AC
controls) start and reads the 704 scale factors (static for a device). Then
it polls: one read of the whole 802 block per battery, scale factors
included, becomes a :class:`~adapters.types.Telemetry`. Requests borrow a
connection per request; setpoints go before waiting polls
(:class:`~adapters._pool.LendingPool`).

Setpoints go out through 704 in one write of ``WSetEna, WSetMod, WSet,
WSetRvrt, WSetPct, WSetPctRvrt, WSetEnaRvrt, WSetRvrtTms`` (``WSet`` in watts,
positive = injected into the grid, so ``WSet = -1000 * power_kw``), and are
confirmed by reading the 704 block back (two requests on one connection).
With a revert timer of ``revert_s`` the device drops a setpoint that is not
renewed, so the adapter rewrites every active setpoint each ``refresh_s``
until its hold ends: if the service dies, the battery falls back to idle by
itself.

Register values out of range (SoC outside 0..100 %, a not-implemented SoC or
power, an unknown scale factor) make the reading a bad payload: counted,
logged, dropped; the poll goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from adapters._base import AssetBook, BookedService
from adapters._pool import LendingPool
from adapters.backoff import Backoff
from adapters.errors import DeviceError, PayloadError, SunSpecError
from adapters.sunspec import BASE_ADDRESSES, END_MODEL_ID, SUNS_MARKER, load_model
from adapters.sunspec.codec import Value
from adapters.types import (
    Confirmation,
    DeviceLimits,
    Setpoint,
    Telemetry,
    TelemetrySource,
)

__all__ = ["ModbusBatteryAdapter", "ModbusUnit"]

log = logging.getLogger("adapters.modbus")

M802, M704 = load_model(802), load_model(704)
#: 802 ``State`` values in which the battery takes setpoints.
_AVAILABLE_STATES = {3, 4, 5}
_MAX_WALK = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusUnit:
    """One battery behind the adapter's host.

    Attributes:
        unit_id: Modbus unit (device) id.
        limits: enrolled limits.
    """

    unit_id: int
    limits: DeviceLimits


@dataclass(frozen=True, slots=True)
class _Map:
    """Where one unit's models start, and its 704 scale factors (read once)."""

    at802: int
    at704: int
    sfs704: dict[str, Value]


@dataclass(slots=True)
class _Active:
    setpoint_kw: float
    until: float
    next_refresh: float


class ModbusBatteryAdapter(BookedService):
    """Telemetry in and setpoints out for SunSpec batteries on one Modbus TCP host.

    Args:
        host: device or gateway host.
        port: Modbus TCP port.
        units: the batteries behind it, by asset id.
        poll_s: seconds between polls of every battery.
        timeout_s: per-request timeout.
        connections: TCP connections to open to the host (at least one must
            connect; fewer are used if the host refuses more).
        revert_s: revert timer written with every setpoint (0 = none).
        refresh_s: how often active setpoints are rewritten (default ``revert_s / 3``).
        queue_size: bound on readings waiting for the consumer.
        backoff_base: scale on reconnect delays.
        time_scale: device seconds per wall-clock second for the clamp (1.0 for real
            equipment; a simulated park on a compressed clock passes its speed-up).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 502,
        units: Mapping[str, ModbusUnit],
        poll_s: float = 1.0,
        timeout_s: float = 2.0,
        connections: int = 4,
        revert_s: float = 60.0,
        refresh_s: float | None = None,
        queue_size: int = 10_000,
        backoff_base: float = 1.0,
        time_scale: float = 1.0,
    ) -> None:
        self.host, self.port = host, port
        self.units = dict(units)
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.revert_s = revert_s
        self.refresh_s = refresh_s if refresh_s is not None else max(0.5, revert_s / 3.0)
        self._book = AssetBook(
            {a: u.limits for a, u in units.items()},
            queue_size=queue_size,
            log=log,
            time_scale=time_scale,
        )
        self._backoff = Backoff(base=backoff_base)
        self.connections = max(1, connections)
        self._pool: LendingPool[AsyncModbusTcpClient] | None = None
        self._maps: dict[str, _Map] = {}
        self._active: dict[str, _Active] = {}
        self._connected = asyncio.Event()
        self._task_name = f"modbus-adapter-{host}:{port}"

    async def apply(self, setpoint: Setpoint) -> Confirmation:
        """Clamp, write through model 704, read back; keep refreshing until the hold ends.

        Raises:
            UnknownAsset: the asset is not behind this adapter.
        """
        clamped = self._book.clamp(setpoint)
        now = time.monotonic()
        self._active[setpoint.asset_id] = _Active(
            clamped.power_kw, now + setpoint.hold_s, now + self.refresh_s
        )
        start = time.perf_counter()
        try:
            echoed = await self._write_wset(setpoint.asset_id, clamped.power_kw)
        except DeviceError as exc:
            return self._book.confirm(
                setpoint, clamped, sent=False, confirmed=False, rtt_s=None, reason=str(exc)
            )
        rtt = time.perf_counter() - start
        ok = echoed is not None and abs(echoed - clamped.power_kw) < 1e-3
        why = "" if ok else f"device reads back {echoed} kW"
        return self._book.confirm(setpoint, clamped, sent=True, confirmed=ok, rtt_s=rtt, reason=why)

    async def release(self, asset_id: str) -> bool:
        """Disable the 704 active-power setpoint: the battery returns to its own mode."""
        self._book.limits_of(asset_id)
        self._active.pop(asset_id, None)
        try:
            await self._write_wset(asset_id, None)
        except DeviceError:
            return False
        return True

    async def _write_wset(
        self, asset_id: str, power_kw: float | None, *, urgent: bool = True
    ) -> float | None:
        unit = self.units[asset_id]
        where = self._maps.get(asset_id)
        if where is None:
            raise DeviceError(f"{asset_id}: not connected or no SunSpec map yet")
        values: dict[str, Value] = {
            "WSetEna": 0 if power_kw is None else 1,
            "WSetMod": 1,
            "WSet": 0.0 if power_kw is None else -power_kw * 1000.0,
            "WSetRvrt": 0.0,
            "WSetEnaRvrt": 0,
            "WSetRvrtTms": int(self.revert_s),
        }
        offset, regs = M704.encode_range("WSetEna", "WSetRvrtTms", values, where.sfs704)
        uid, at704 = unit.unit_id, where.at704
        async with self._borrow(urgent=urgent) as client:
            await self._request(
                client, lambda c: c.write_registers(at704 + offset, regs, device_id=uid)
            )
            # the whole block: decoded with the scale factors the device has now
            back = M704.decode(await self._read_block(client, uid, at704, M704.size))
        wset = back.get("WSet")
        return -float(wset) / 1000.0 if isinstance(wset, int | float) else None

    @contextlib.asynccontextmanager
    async def _borrow(self, *, urgent: bool) -> AsyncIterator[AsyncModbusTcpClient]:
        pool = self._pool
        if pool is None:
            raise DeviceError(f"{self.host}:{self.port} not connected")
        async with pool.lend(urgent=urgent) as client:
            yield client

    async def _request(
        self,
        client: AsyncModbusTcpClient,
        op: Callable[[AsyncModbusTcpClient], Awaitable[Any]],
    ) -> list[int]:
        if not client.connected:
            raise DeviceError(f"{self.host}:{self.port} not connected")
        try:
            response = await asyncio.wait_for(op(client), self.timeout_s)
        except (ModbusException, TimeoutError, OSError) as exc:
            raise DeviceError(f"{self.host}:{self.port}: {exc!r}") from exc
        if response.isError():
            raise DeviceError(f"{self.host}:{self.port}: exception response {response}")
        return list(getattr(response, "registers", []))

    async def _read_block(
        self, client: AsyncModbusTcpClient, unit_id: int, address: int, count: int
    ) -> list[int]:
        return await self._request(
            client, lambda c: c.read_holding_registers(address, count=count, device_id=unit_id)
        )

    async def _discover(self, client: AsyncModbusTcpClient, asset_id: str, unit_id: int) -> _Map:
        for base in BASE_ADDRESSES:
            try:
                marker = await self._read_block(client, unit_id, base, 2)
            except DeviceError:
                continue
            if tuple(marker) == SUNS_MARKER:
                break
        else:
            raise SunSpecError(f"{asset_id}: no SunS marker at {BASE_ADDRESSES}")
        found: dict[int, int] = {}
        address = base + 2
        for _ in range(_MAX_WALK):
            model_id, length = await self._read_block(client, unit_id, address, 2)
            if model_id == END_MODEL_ID:
                break
            found.setdefault(model_id, address)
            address += 2 + length
        for needed in (802, 704):
            if needed not in found:
                raise SunSpecError(f"{asset_id}: model {needed} missing", model_id=needed)
        block = M704.decode(await self._read_block(client, unit_id, found[704], M704.size))
        sfs = {name: v for name, v in block.items() if name.endswith("_SF")}
        return _Map(found[802], found[704], sfs)

    async def _connect(self) -> list[AsyncModbusTcpClient]:
        """Open the connections; at least the first must connect."""
        clients = [
            AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
            for _ in range(self.connections)
        ]
        ok = await asyncio.gather(*(c.connect() for c in clients), return_exceptions=True)
        up = [c for c, good in zip(clients, ok, strict=True) if good is True]
        for client in clients:
            if client not in up:
                client.close()
        if not up:
            raise DeviceError(f"cannot connect to {self.host}:{self.port}")
        if len(up) < len(clients):
            log.warning(
                "Modbus %s:%d took %d of %d connections",
                self.host, self.port, len(up), len(clients),
            )  # fmt: skip
        return up

    async def _run(self) -> None:
        first = True
        while not self._closing:
            clients: list[AsyncModbusTcpClient] = []
            try:
                clients = await self._connect()
                for asset_id, unit in self.units.items():
                    self._maps[asset_id] = await self._discover(clients[0], asset_id, unit.unit_id)
                self._pool = LendingPool(clients)
                self._backoff.reset()
                self.stats.connected = True
                self.stats.reconnects += 0 if first else 1
                first = False
                self._connected.set()
                log.info(
                    "Modbus connected to %s:%d (%d units, %d connections)",
                    self.host, self.port, len(self.units), len(clients),
                )  # fmt: skip
                await self._poll_forever()
            except DeviceError as exc:
                log.warning("Modbus %s:%d: %s", self.host, self.port, exc)
            finally:
                pool, self._pool = self._pool, None
                if pool is not None:
                    pool.close(DeviceError(f"{self.host}:{self.port} connection lost"))
                self._connected.clear()
                self.stats.connected = False
                for client in clients:
                    client.close()
            await self._backoff.wait()

    async def _poll_forever(self) -> None:
        while True:
            started = time.monotonic()
            for asset_id, unit in self.units.items():
                at802 = self._maps[asset_id].at802
                async with self._borrow(urgent=False) as client:
                    regs = await self._read_block(client, unit.unit_id, at802, M802.size)
                try:
                    self._book.publish(self._reading(asset_id, regs))
                except PayloadError as exc:
                    self._book.bad_payload(f"{self.host}:{self.port}/{unit.unit_id}", exc.detail)
                await self._refresh(asset_id)
            await asyncio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))

    async def _refresh(self, asset_id: str) -> None:
        active = self._active.get(asset_id)
        now = time.monotonic()
        if active is None or now < active.next_refresh:
            return
        if now >= active.until:
            del self._active[asset_id]
            return
        active.next_refresh = now + self.refresh_s
        await self._write_wset(asset_id, active.setpoint_kw, urgent=False)

    @staticmethod
    def _reading(asset_id: str, regs: list[int]) -> Telemetry:
        values = M802.decode(regs)
        soc, watts = values.get("SoC"), values.get("W")
        if not isinstance(soc, float) or not 0.0 <= soc <= 100.0:
            raise PayloadError(f"{asset_id}: SoC out of range: {soc!r}")
        if not isinstance(watts, float) or not math.isfinite(watts):
            raise PayloadError(f"{asset_id}: battery power not readable: {watts!r}")
        cha, dis = values.get("WChaRteMax"), values.get("WDisChaRteMax")
        return Telemetry(
            asset_id=asset_id,
            ts=time.time(),
            power_kw=watts / 1000.0,
            soc=soc / 100.0,
            available=values.get("State") in _AVAILABLE_STATES,
            max_charge_kw=cha / 1000.0 if isinstance(cha, float) and cha >= 0 else None,
            max_discharge_kw=dis / 1000.0 if isinstance(dis, float) and dis >= 0 else None,
            source=TelemetrySource.MODBUS,
        )
