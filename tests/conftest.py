"""Suite-wide settings: a hang prints every thread's stack instead of waiting silently."""

import faulthandler
import sys

faulthandler.enable(file=sys.stderr, all_threads=True)
