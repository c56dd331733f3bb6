"""Every error Tidebase raises on purpose (see ``tidebase_core.errors``)."""

from tidebase_core.errors import *  # noqa: F403
from tidebase_core.errors import __all__ as __all__
