"""The stand-ins' library (standin/lib), shared with the API endpoints:
the providers' import rules and the QEMU boot code live there once
(standin/lib/standin.py; the az stand-in uses them too)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "lib"))

import standin  # noqa: E402,F401
