"""What the tests share: polling for a state, the repository's paths, MQTT and portfolio set-ups.

* :func:`eventually` - the one polling helper: wait for a state to be reached;
* :mod:`tests.support.paths` - the repository root and the example files under ``config/``;
* :class:`MqttRig` - one test's corner of an MQTT broker (the ``mqtt`` fixture);
* :mod:`tests.support.portfolios` - dispatch portfolios built by hand or drawn by hypothesis
  (imported from there: only the dispatch tests need hypothesis strategies).

Fixtures live in the ``conftest.py`` files; they build on these.
"""

from tests.support.mqtt import MqttRig
from tests.support.paths import DEMO_PARK, EXAMPLE_SETTINGS, REPO
from tests.support.polling import eventually

__all__ = ["DEMO_PARK", "EXAMPLE_SETTINGS", "REPO", "MqttRig", "eventually"]
