"""The project's command-line tools (make targets run them) and the scripts that derive committed data."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import AppConfig


def load_config_or_report() -> AppConfig | None:
    """The config a command runs on (RAY_EKS_CONFIG, else the defaults); None once its one-line error is printed:
    the command then exits 2."""
    from config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
