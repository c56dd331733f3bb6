"""The async engine: the source of truth for the run/step machinery.

``tidebase_core/_sync/`` is generated from these modules by ``tools/generate_sync.py``, so the
sync and the async API share one implementation of every rule. Edit here, then regenerate.
"""
