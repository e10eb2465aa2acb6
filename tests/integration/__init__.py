"""Integration tests: the real operator against the real API server, Vault and PostgreSQL.

The pieces that several test modules share live in the non-test modules of this package
(helpers.py, operator_harness.py, *_support.py) and the fixtures in conftest.py; a test module
never imports from another one (tests/unit/test_integration_imports.py).

pytest rewrites `assert` (to report the values of a failing one) only in test modules and
conftest.py: the helper modules are registered here, before any of them is imported, so that
their asserts report as well as the tests' own.
"""

from pathlib import Path

import pytest

pytest.register_assert_rewrite(
    *(
        f"{__name__}.{path.stem}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        if not path.stem.startswith(("test_", "conftest", "__"))
    )
)
