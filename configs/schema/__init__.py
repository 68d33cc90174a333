"""The one typed configuration of dxai (pydantic v2, ``extra="forbid"``).

Load with :func:`load_config`; it validates everything before any component connects.
"""

from dxai.configs.schema.loader import format_validation_error, load_config
from dxai.configs.schema.root import DxaiConfig

__all__ = ["DxaiConfig", "format_validation_error", "load_config"]
