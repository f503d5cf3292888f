"""Contract tests run real workers: the same leak check as the integration tests applies."""

from tests.integration.conftest import no_leaks  # noqa: F401  (an autouse fixture)
