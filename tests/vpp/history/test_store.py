"""The interval history store against a real Redis: layout, merge, import, retention."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from vpp.errors import SettingsError
from vpp.history.grid import SLOTS_PER_DAY
from vpp.history.store import DAY_BYTES, HistoryStore, IntervalDelta, pack_day, unpack_day
from vpp.keys import Keys
from vpp.model import Park
from vpp.settings import HistorySettings, Settings
from vpp.state import State

PARK = "p1"
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: a recent day (an old one would be past its retention at once)
DAY = date.today() - timedelta(days=3)


@pytest.fixture
def store(state: State) -> HistoryStore:
    return HistoryStore(state, retention_days=400)


def test_pack_and_unpack_round_trip() -> None:
    energy = np.arange(SLOTS_PER_DAY) * 0.5
    covered = np.full(SLOTS_PER_DAY, 450)
    imported = np.zeros(SLOTS_PER_DAY, dtype=bool)
    imported[3] = True
    raw = pack_day(energy, covered, imported)
    assert len(raw) == DAY_BYTES == 576
    day = unpack_day(raw)
    np.testing.assert_allclose(day.energy_kwh, energy)
    np.testing.assert_allclose(day.coverage, 0.5)
    assert day.imported.tolist() == [i == 3 for i in range(SLOTS_PER_DAY)]
    # slot 0: 0 kWh over 450 s is a real zero load, slot 1: 0.5 kWh over 1/8 h = 4 kW
    assert day.mean_kw[0] == 0.0 and day.mean_kw[1] == pytest.approx(4.0)
    with pytest.raises(ValueError):
        pack_day(energy, np.full(SLOTS_PER_DAY, 901), imported)


async def test_add_merges_into_slots_and_leaves_the_rest_without_data(
    store: HistoryStore, state: State, namespace: str
) -> None:
    await store.add(
        PARK,
        [
            IntervalDelta("b1", DAY, 40, 2.5, 300),
            IntervalDelta("b1", DAY, 40, 1.25, 150),  # merged in the same call
            IntervalDelta("b1", DAY, 41, -1.0, 900),
        ],
        tz=SHANGHAI,
    )
    await store.add(PARK, [IntervalDelta("b1", DAY, 40, 1.0, 600)], tz=SHANGHAI)  # a second writer
    raw = await state.redis.get(f"{namespace}:{{{PARK}}}:hist:b1:{DAY:%Y%m%d}")
    assert raw is not None and len(raw) == DAY_BYTES
    day = (await store.read(PARK, ["b1"], DAY, DAY))["b1"][DAY]
    assert day.energy_kwh[40] == pytest.approx(4.75)
    assert day.coverage[40] == 1.0  # 300 + 150 + 600 s, capped at the slot's 900
    assert day.energy_kwh[41] == pytest.approx(-1.0) and day.coverage[41] == 1.0
    others = [i for i in range(SLOTS_PER_DAY) if i not in (40, 41)]
    assert np.all(day.coverage[others] == 0) and np.all(np.isnan(day.mean_kw[others]))


async def test_read_gives_every_day_of_the_range(store: HistoryStore) -> None:
    await store.add(PARK, [IntervalDelta("m1", DAY, 0, 3.0, 900)], tz=SHANGHAI)
    got = await store.read(PARK, ["m1", "b9"], DAY - timedelta(days=1), DAY + timedelta(days=1))
    assert list(got) == ["m1", "b9"]
    assert list(got["m1"]) == [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    assert got["m1"][DAY].mean_kw[0] == pytest.approx(12.0)
    assert got["m1"][DAY - timedelta(days=1)].day_coverage == 0.0
    assert all(v.day_coverage == 0.0 for v in got["b9"].values())
    with pytest.raises(ValueError):
        await store.read(PARK, ["m1"], DAY, DAY - timedelta(days=1))


async def test_imported_days_replace_and_telemetry_never_overwrites_them(
    store: HistoryStore,
) -> None:
    await store.add(PARK, [IntervalDelta("m1", DAY, 5, 9.0, 900)], tz=SHANGHAI)
    energies = [float(i) for i in range(SLOTS_PER_DAY)]
    nxt = DAY + timedelta(days=1)
    replaced = await store.put_days(PARK, "m1", {nxt: energies, DAY: energies}, tz=SHANGHAI)
    assert replaced == [DAY]  # the next day held nothing
    await store.add(PARK, [IntervalDelta("m1", DAY, 5, 100.0, 300)], tz=SHANGHAI)
    day = (await store.read(PARK, ["m1"], DAY, DAY))["m1"][DAY]
    assert day.energy_kwh[5] == 5.0 and day.coverage[5] == 1.0 and bool(day.imported[5])
    assert day.imported.all() and np.array_equal(day.energy_kwh, energies)
    # a re-import replaces the day and reports it
    again = [1.0] * SLOTS_PER_DAY
    assert await store.put_days(PARK, "m1", {nxt: again}, tz=SHANGHAI) == [nxt]
    assert (await store.read(PARK, ["m1"], nxt, nxt))["m1"][nxt].energy_kwh.sum() == 96.0


async def test_put_days_refuses_a_short_day_and_writes_nothing(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="95 values"):
        await store.put_days(
            PARK, "m1", {DAY: [1.0] * SLOTS_PER_DAY, DAY + timedelta(days=1): [1.0] * 95}
        )
    assert (await store.read(PARK, ["m1"], DAY, DAY))["m1"][DAY].day_coverage == 0.0
    with pytest.raises(ValueError, match="finite"):
        await store.put_days(PARK, "m1", {DAY: [float("nan")] * SLOTS_PER_DAY})


async def test_add_refuses_a_bad_delta(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="slot 96"):
        await store.add(PARK, [IntervalDelta("b1", DAY, 96, 1.0, 10)], tz=SHANGHAI)
    with pytest.raises(ValueError):
        await store.add(PARK, [IntervalDelta("b1", DAY, 1, 1.0, -1)], tz=SHANGHAI)


async def test_every_write_expires_at_the_day_end_plus_the_retention(
    state: State, namespace: str
) -> None:
    await state.put_park(Park(id=PARK, timezone="Asia/Shanghai"))
    store = HistoryStore(state, retention_days=30)
    await store.add(PARK, [IntervalDelta("b1", DAY, 0, 1.0, 60)])  # zone read from the park
    await store.put_days(PARK, "m1", {DAY: [1.0] * SLOTS_PER_DAY})
    # the next local midnight (+08:00), plus 30 days
    end = datetime.combine(DAY + timedelta(days=1), time(0), SHANGHAI) + timedelta(days=30)
    for series in ("b1", "m1"):
        key = f"{namespace}:{{{PARK}}}:hist:{series}:{DAY:%Y%m%d}"
        assert await state.redis.expiretime(key) == int(end.timestamp())
    # a day already past its retention is gone as soon as it is written
    old = date.today() - timedelta(days=40)
    await store.add(PARK, [IntervalDelta("b1", old, 0, 1.0, 60)])
    assert not await state.redis.exists(f"{namespace}:{{{PARK}}}:hist:b1:{old:%Y%m%d}")


async def test_an_asset_day_takes_under_a_kilobyte(
    store: HistoryStore, state: State, namespace: str
) -> None:
    await store.add(
        PARK, [IntervalDelta("b1", DAY, s, 1.0, 900) for s in range(SLOTS_PER_DAY)], tz=SHANGHAI
    )
    used = await state.redis.memory_usage(f"{namespace}:{{{PARK}}}:hist:b1:{DAY:%Y%m%d}")
    assert used is not None and DAY_BYTES < used <= 1024


def test_key_of_a_series_day_is_under_the_park_hash_tag() -> None:
    assert Keys("vpp", "p1").history("b1", date(2024, 3, 5)) == "vpp:{p1}:hist:b1:20240305"
    assert Keys("vpp", "p1").history_lease == "vpp:{p1}:lease:history"


def test_history_settings_and_their_bounds() -> None:
    assert Settings().history == HistorySettings(retention_days=400, flush_s=60.0)
    env = {"VPP_HISTORY_RETENTION_DAYS": "30", "VPP_HISTORY_FLUSH_S": "5"}
    assert Settings.load(env=env).history == HistorySettings(retention_days=30, flush_s=5.0)
    for name in ("VPP_HISTORY_RETENTION_DAYS", "VPP_HISTORY_FLUSH_S"):
        with pytest.raises(SettingsError, match="a duration must be above 0"):
            Settings.load(env={name: "0"})
