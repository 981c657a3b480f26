"""What the tests share: polling for a state and the repository's paths.

* :func:`eventually` - the one polling helper: wait for a state to be reached;
* :mod:`tests.support.paths` - the repository root and the example files under ``config/``.

Fixtures live in the ``conftest.py`` files; they build on these.
"""

from tests.support.paths import DEMO_PARK, EXAMPLE_SETTINGS, REPO
from tests.support.polling import eventually

__all__ = ["DEMO_PARK", "EXAMPLE_SETTINGS", "REPO", "eventually"]
