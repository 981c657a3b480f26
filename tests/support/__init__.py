"""What the tests share: polling for a state, the repository's paths, the MQTT set-up.

* :func:`eventually` - the one polling helper: wait for a state to be reached;
* :mod:`tests.support.paths` - the repository root and the example files under ``config/``;
* :class:`MqttRig` - one test's corner of an MQTT broker (the ``mqtt`` fixture).

Fixtures live in the ``conftest.py`` files; they build on these.
"""

from tests.support.mqtt import MqttRig
from tests.support.paths import DEMO_PARK, EXAMPLE_SETTINGS, REPO
from tests.support.polling import eventually

__all__ = ["DEMO_PARK", "EXAMPLE_SETTINGS", "REPO", "MqttRig", "eventually"]
