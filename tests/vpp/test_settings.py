"""Settings: one object per component, units in the names (old keys still read), secrets hidden."""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import EXAMPLE_SETTINGS
from vpp.errors import SettingsError
from vpp.openadr import OpenAdrSettings, VenSettings
from vpp.service import serve
from vpp.settings import RENAMED, ControlSettings, Settings, redact_url


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vpp.toml"
    path.write_text(text)
    return path


def test_the_example_file_lists_every_field_at_its_one_default() -> None:
    with EXAMPLE_SETTINGS.open("rb") as fh:
        data = tomllib.load(fh)
    defaults = Settings()
    for section in dataclasses.fields(defaults):
        names = {f.name for f in dataclasses.fields(getattr(defaults, section.name))}
        assert set(data[section.name]) == names, section.name
    # no old key in it (it would warn, and the suite turns warnings into errors)
    assert Settings.load(EXAMPLE_SETTINGS, env={}) == defaults


def test_the_control_section_is_the_control_loops_settings() -> None:
    loaded = Settings.load(env={"VPP_CONTROL_PERIOD_S": "7", "VPP_CONTROL_SETTLE_S": "0.5"})
    assert loaded.control == ControlSettings(period_s=7.0, settle_s=0.5)
    assert (Settings().control.period_s, Settings().control.lease_ttl_s) == (5.0, 15.0)


def test_the_openadr_section_builds_the_ven_settings() -> None:
    section = OpenAdrSettings(
        vtn_url="http://vtn", park="p1", programs=" dr-a, ,dr-b", client_secret="s3"
    )
    assert section.enabled and not OpenAdrSettings(vtn_url="http://vtn").enabled
    ven = section.ven_settings()
    assert ven.program_names == ("dr-a", "dr-b")
    assert (ven.vtn_url, ven.client_secret, ven.ven_name) == ("http://vtn", "s3", "vpp-ven")
    # one default: the section's poll interval is the VEN's
    (default,) = (f.default for f in dataclasses.fields(VenSettings) if f.name == "poll_interval_s")
    assert section.poll_interval_s == ven.poll_interval_s == default


@pytest.mark.parametrize(("section", "old"), sorted(RENAMED))
def test_an_old_key_is_read_with_a_warning(tmp_path: Path, section: str, old: str) -> None:
    new = RENAMED[section, old]
    path = _toml(tmp_path, f"[{section}]\n{old} = 7\n")
    with pytest.warns(FutureWarning, match=rf"\[{section}\] {old} in {path} is deprecated.*{new}"):
        loaded = Settings.load(path, env={})
    assert getattr(getattr(loaded, section), new) == 7
    var = f"VPP_{section}_{old}".upper()
    with pytest.warns(FutureWarning, match=rf"{var} in the environment is deprecated.*{var}_S"):
        loaded = Settings.load(env={var: "8"})
    assert getattr(getattr(loaded, section), new) == 8


def test_the_warning_points_at_the_caller_of_load(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[control]\nperiod = 7\n")
    with pytest.warns(FutureWarning) as caught:
        Settings.load(path, env={})
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[http]\nport = 8080.5\n", r"http\.port=8080\.5: expected an integer"),
        ("[http]\nport = 70000\n", r"http\.port=70000: a port is 0\.\.65535"),
        ("[control]\nperiod_s = -1\n", r"control\.period_s=-1\.0: expected a finite number >= 0"),
        ("[control]\nlease_ttl_s = 0\n", r"control\.lease_ttl_s=0\.0: a duration must be above 0"),
        ("[mqtt]\nkeepalive_s = 30.9\n", r"mqtt\.keepalive_s=30\.9: expected an integer"),
        ("[reports]\nprice_per_kwh = nan\n", r"reports\.price_per_kwh=nan: expected a finite"),
        ("[control]\ninterval_minutes = 0\n", r"control\.interval_minutes=0: a duration"),
    ],
)
def test_a_value_no_setting_can_mean_is_refused(tmp_path: Path, text: str, message: str) -> None:
    # A fraction is not truncated into an integer field; a negative number, a
    # duration of 0, a port past 65535 or a NaN is refused with the setting named.
    with pytest.raises(SettingsError, match=message):
        Settings.load(_toml(tmp_path, text), env={})


def test_an_integral_float_and_port_0_are_accepted(tmp_path: Path) -> None:
    loaded = Settings.load(
        _toml(tmp_path, "[http]\nport = 0\n[mqtt]\nkeepalive_s = 30.0\n"), env={}
    )
    assert (loaded.http.port, loaded.mqtt.keepalive_s) == (0, 30)


def test_an_old_and_a_new_key_for_one_field_is_an_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[control]\nperiod = 7\nperiod_s = 8\n")
    with pytest.raises(SettingsError, match=r"\[control\] period and \[control\] period_s"):
        Settings.load(path, env={})
    both = {"VPP_MODBUS_TIMEOUT": "1", "VPP_MODBUS_TIMEOUT_S": "2"}
    with pytest.raises(SettingsError, match="VPP_MODBUS_TIMEOUT and VPP_MODBUS_TIMEOUT_S"):
        Settings.load(env=both)
    # the environment still overrides the file, whichever name each uses
    path = _toml(tmp_path, "[control]\nperiod_s = 7\n")
    assert Settings.load(path, env={"VPP_CONTROL_PERIOD_S": "9"}).control.period_s == 9


@pytest.mark.parametrize("key", ["emission_factor_t_per_mwh", "emission_factor_source"])
def test_the_old_report_emission_factor_is_refused_naming_the_park_factor(
    tmp_path: Path, key: str
) -> None:
    # a config file of before the per-park factor: not silently ignored, not still applied
    value = "0.5703" if key.endswith("mwh") else '"MEE 2023 notice"'
    path = _toml(tmp_path, f"[reports]\nprice_per_kwh = 3.5\n{key} = {value}\n")
    with pytest.raises(SettingsError) as refused:
        Settings.load(path, env={})
    message = str(refused.value)
    assert f"[reports] {key} in {path} is no longer a setting" in message
    assert "chosen per park" in message and "carbon.electricity_factor" in message
    assert "mee-2023-southern" in message and "provincial_factor" in message
    with pytest.raises(SettingsError, match=f"VPP_REPORTS_{key.upper()} in the environment"):
        Settings.load(env={f"VPP_REPORTS_{key.upper()}": "0.5703"})


def test_secrets_are_not_in_repr() -> None:
    settings = Settings()
    settings.mqtt.password = "mqtt-pw-1"
    settings.ocpp.auth_secret = "ocpp-secret-2"
    settings.openadr.client_secret = "oadr-secret-3"
    settings.redis.url = "redis://user:redis-pw-4@db.example:6379/0"
    shown = repr(settings)
    for secret in ("mqtt-pw-1", "ocpp-secret-2", "oadr-secret-3", "redis-pw-4"):
        assert secret not in shown
    assert "url='redis://user:***@db.example:6379/0'" in shown
    settings.openadr.programs = "dr"
    assert "oadr-secret-3" not in repr(settings.openadr.ven_settings())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("", ""),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://user:p%40ss@h", "rediss://user:***@h"),
        ("redis://u:a@b@h:1", "redis://u:***@h:1"),
        ("unix:///run/redis.sock?db=1&password=pw", "unix:///run/redis.sock?db=1&password=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_the_start_up_log_masks_the_redis_password(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis's default user has no password, so AUTH default <anything> is accepted.
    parts = urlsplit(redis_url)
    url = parts._replace(netloc=f"default:start-up-secret@{parts.netloc}").geturl()
    settings = Settings()
    settings.redis.url, settings.redis.namespace = url, namespace
    settings.http.port = 0
    caplog.set_level(logging.INFO)
    await serve(settings, url, duration=0.2)
    started = [r.getMessage() for r in caplog.records if "serving the API" in r.getMessage()]
    assert len(started) == 1
    assert f"(redis {parts.scheme}://default:***@{parts.netloc}" in started[0]
    assert "start-up-secret" not in caplog.text


def test_the_mqtt_share_group_is_the_redis_namespace_unless_set(tmp_path: Path) -> None:
    settings = Settings.load(_toml(tmp_path, '[redis]\nnamespace = "prod"\n'), env={})
    assert settings.mqtt.share_group_in(settings.redis.namespace) == "prod"
    env = {"VPP_MQTT_SHARE_GROUP": ""}  # plain subscriptions: every replica reads everything
    assert Settings.load(env=env).mqtt.share_group_in("prod") == ""
    env = {"VPP_MQTT_SHARE_GROUP": "vpp-{namespace}"}
    assert Settings.load(env=env).mqtt.share_group_in("prod") == "vpp-prod"
    with pytest.raises(SettingsError, match="must not contain"):  # at start, not at first use
        Settings.load(env={"VPP_REDIS_NAMESPACE": "a/b"})


@pytest.mark.parametrize("lease", ["2", "1.5"])
def test_a_lease_not_longer_than_the_heartbeat_is_refused(lease: str) -> None:
    env = {"VPP_CONTROL_LEASE_TTL_S": lease, "VPP_REPLICAS_HEARTBEAT_S": "2"}
    with pytest.raises(SettingsError, match=rf"lease_ttl_s={lease}.*heartbeat_s=2"):
        Settings.load(env=env)
    # longer than one heartbeat but shorter than three: allowed (ParkShares warns)
    env["VPP_CONTROL_LEASE_TTL_S"] = "3"
    assert Settings.load(env=env).control.lease_ttl_s == 3
