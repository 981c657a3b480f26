"""Market rule profiles: the shipped ones, a profiles file, and their errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vpp.api import create_app
from vpp.bids import BidRequest, apply_profile
from vpp.errors import InvalidInput, SettingsError
from vpp.market import load_profiles, shipped_profiles
from vpp.settings import Settings
from vpp.state import State

T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
PROFILES = shipped_profiles()
SPOT, DR = PROFILES["gd-spot-unit"], PROFILES["gd-market-dr"]


def test_shipped_profiles_carry_their_rules_and_sources() -> None:
    assert SPOT.min_capacity_mw == 1.0 and SPOT.min_duration_minutes == 60.0
    assert SPOT.one_clearing_node and SPOT.capacity_scope == "unit"
    assert DR.min_capacity_mw == 5.0 and DR.min_duration_minutes == 60.0
    assert DR.capacity_scope == "vpp" and DR.price_floor_cny_per_mwh == 0.0
    # the market-DR cap is the spot price cap x 150 %
    assert DR.price_cap_cny_per_mwh == pytest.approx(DR.spot_price_cap_cny_per_mwh * 1.5)
    assert DR.price_cap_cny_per_mwh == pytest.approx(2250.0)
    assert DR.bid_rules()["price_cap"] == pytest.approx(2.25)  # CNY/kWh
    for profile in (SPOT, DR):
        named = {rule for source in profile.sources for rule in source.rules}
        assert {"min_capacity_mw", "min_duration_minutes"} <= named
        assert all(source.url and source.document for source in profile.sources)
    assert all(s.as_reported for s in DR.sources)  # honest: read from reports


def test_a_profiles_file_replaces_a_shipped_profile_by_name(tmp_path: Path) -> None:
    path = tmp_path / "market.toml"
    path.write_text(
        "[profiles.gd-market-dr]\nmin_capacity_mw = 5.0\nmin_duration_minutes = 60.0\n"
        'capacity_scope = "vpp"\nspot_price_cap_cny_per_mwh = 1200.0\nprice_cap_factor = 1.5\n'
        '[[profiles.gd-market-dr.sources]]\nrules = ["spot_price_cap_cny_per_mwh"]\n'
        'document = "the trading centre notice of this week"\n'
    )
    profiles = load_profiles(path, "gd-market-dr")
    assert profiles["gd-market-dr"].price_cap_cny_per_mwh == pytest.approx(1800.0)
    assert profiles["gd-spot-unit"] == SPOT  # the others stay


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profiles.gd-x]\nmin_capacity_mw = -1\nmin_duration_minutes = 60\n"
         "spot_price_cap_cny_per_mwh = 1500\nsources = [{rules = ['x'], document = 'd'}]\n",
         "market profile 'gd-x' in .*: min_capacity_mw: Input should be greater than or equal"),
        ("[profiles.gd-x]\nmin_capacity_mw = 1\nmin_duration_minutes = 60\n"
         "spot_price_cap_cny_per_mwh = 1500\n",
         "market profile 'gd-x' in .*: sources: Field required"),
        ("[profiles.gd-x]\nmin_capacity_mw = 1\nmin_duration_minutes = 60\nprice_cap = 3\n"
         "spot_price_cap_cny_per_mwh = 1500\nsources = [{rules = ['x'], document = 'd'}]\n",
         "market profile 'gd-x' in .*: price_cap: Extra inputs are not permitted"),
        ("[profiles.gd-x]\nmin_capacity_mw = 1\nmin_duration_minutes = 60\n"
         "spot_price_cap_cny_per_mwh = 100\nprice_floor_cny_per_mwh = 200\n"
         "sources = [{rules = ['x'], document = 'd'}]\n",
         "market profile 'gd-x' in .*: price_floor_cny_per_mwh: must not exceed the price cap"),
        ("[profile.gd-x]\n", "unknown table 'profile'"),
        ("[profiles.gd-x\n", "cannot read market profiles"),
    ],
)  # fmt: skip
def test_profile_file_errors_name_the_profile_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "market.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_profiles(path)


def test_settings_name_the_profiles_file_and_default(tmp_path: Path) -> None:
    config = tmp_path / "vpp.toml"
    config.write_text('[market]\nprofiles_file = "nowhere.toml"\ndefault_profile = "gd-x"\n')
    settings = Settings.load(config, env={})
    assert settings.market.profiles_file == "nowhere.toml"
    with pytest.raises(SettingsError, match=r"cannot read \[market\] profiles_file nowhere.toml"):
        load_profiles(settings.market.profiles_file, settings.market.default_profile)
    with pytest.raises(SettingsError, match=r"default_profile 'gd-x' names no profile \(known: "):
        load_profiles("", "gd-x")
    assert Settings.load(None, env={}).market.default_profile == "gd-spot-unit"


def test_a_request_takes_its_profile_rules_unless_it_gives_its_own() -> None:
    req = BidRequest.model_validate({"start": T0.isoformat(), "profile": "gd-market-dr"})
    assert apply_profile(req, PROFILES).rules.min_capacity_kw == 5000.0
    assert apply_profile(req, PROFILES).rules.price_cap == pytest.approx(2.25)
    own = BidRequest.model_validate(
        {"start": T0.isoformat(), "profile": "gd-market-dr", "rules": {"min_capacity_kw": 10}}
    )
    assert apply_profile(own, PROFILES).rules.min_capacity_kw == 10.0  # given rules win
    bad = BidRequest.model_validate({"start": T0.isoformat(), "profile": "gd-nowhere"})
    with pytest.raises(InvalidInput) as caught:
        apply_profile(bad, PROFILES)
    assert caught.value.fields == ["profile"]


def test_the_service_refuses_to_start_on_a_bad_profiles_file(tmp_path: Path, state: State) -> None:
    path = tmp_path / "market.toml"
    path.write_text("[profiles.gd-x]\nmin_capacity_mw = 1\n")
    settings = Settings.load(None, env={"VPP_MARKET_PROFILES_FILE": str(path)})
    with pytest.raises(SettingsError, match=r"market profile 'gd-x' in .*: min_duration_minutes"):
        create_app(settings, state)
