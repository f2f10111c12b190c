"""The catalog the commands that read models see (`load_selected`).

Apart from catalog/store.py because it reaches up to vllmctl.catalog.environments, which builds
on the store: store importing environments back made a circle. environments is imported
only when an environment or a replica count is selected, so `list-models` without one
stays as light as before.
"""

from __future__ import annotations

from typing import Any

from vllmctl.catalog.store import Catalog, load


def load_selected(settings: Any) -> Catalog:
    """models.yaml, merged with the selected environment's models.NAME.yaml, replica counts
    set by VLLM_REPLICA_COUNT (or the environment's replicaCount). Editing commands use
    `catalog.store.load`: they edit models.yaml only."""
    if not settings.raw("env") and settings.raw("replica_count") is None:
        return load(settings.models_path)
    from vllmctl.catalog.environments import load_catalog

    return load_catalog(settings)
