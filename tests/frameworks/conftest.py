"""Real Lightning and Accelerate runs: torchrun jobs on gloo, and in-process single-device fits."""

from tests.distributed.conftest import _gloo_on_loopback  # noqa: F401  (an autouse fixture)
from tests.integration.conftest import no_leaks  # noqa: F401  (an autouse fixture)
