"""The ``aggregator`` command line. Thin: parse options, call the stages, print.

One module per kind of command (each adds its commands to the group in :mod:`.base`)."""

from __future__ import annotations

from aggregator.cli import admin, inspecting, running  # noqa: F401  (they add their commands to main)
from aggregator.cli.base import (
    EXIT_CONFIG,
    EXIT_INTERNAL,
    EXIT_LOCKED,
    EXIT_REFUSED,
    EXIT_STORE,
    main,
    setup_logging,
)

__all__ = ["EXIT_CONFIG", "EXIT_INTERNAL", "EXIT_LOCKED", "EXIT_REFUSED", "EXIT_STORE", "main", "setup_logging"]
