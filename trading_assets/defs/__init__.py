"""The thin Dagster layer: one module per stage (asset + its checks), resources, partitions, automation."""

import warnings

# Beta APIs this project uses on purpose, for reasons measured and written down (docs/ARCHITECTURE.md,
# DESIGN section 3): a single-run backfill policy on every session asset (a 5-year backfill is one run)
# and lookback partition mappings that start before the first partition. Their BetaWarning lines were
# printed at every import of the code location; other Beta/Preview warnings still show.
warnings.filterwarnings("ignore", message=r"Parameter `(backfill_policy|allow_nonexistent_upstream_partitions)` of ")
