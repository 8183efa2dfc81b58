"""Loads the suite's pytest plugin from the repository (``fixtures/plugin.py``).

``fixtures`` is also the name of an unrelated PyPI package; pytest puts this
directory first on ``sys.path`` before importing this file, so the plugin
below is always ours.  The check makes a shadowing install fail loudly.
"""

from pathlib import Path

import fixtures

if Path(fixtures.__file__).resolve().parent != Path(__file__).resolve().parent / "fixtures":
    raise ImportError(
        f"'fixtures' resolves to {fixtures.__file__}, not this repository's fixtures/: "
        "run pytest from the repository root"
    )

pytest_plugins = ["fixtures.plugin", "fixtures.labgrid", "fixtures.reporting",
                  "fixtures.progress", "fixtures.generated", "fixtures.timing"]
