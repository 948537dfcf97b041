"""The deployment's configuration: typed models (``models``), their validated building blocks (``types``),
pinned versions (``versions``) and YAML loading with one-line errors (``loading``).

    from config import AppConfig, ConfigError, load_config
"""

from .loading import CONFIG_ENV_VAR, ConfigError, load_config, parse_config
from .models import AppConfig

__all__ = ["CONFIG_ENV_VAR", "AppConfig", "ConfigError", "load_config", "parse_config"]
