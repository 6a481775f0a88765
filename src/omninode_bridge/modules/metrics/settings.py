"""The metrics module's settings group (``OMNINODE_METRICS_*``, plus ``OMNINODE_MODELS_FILE``).

Defined with the other groups in the root settings until the typed wiring moves every group into its module
(a module's settings importing from the root is the direction that does not cycle); the module imports it from
here only.
"""

from __future__ import annotations

from omninode_bridge.settings import MetricsSettings

__all__ = ["MetricsSettings"]
