"""Storage: the one place that speaks SQL.

`database.Store` is one DuckDB file (schema and migrations in `schema`); its named queries come from
one small module per table group (`catalog`, `protocols`, `artifacts`, `graph`, `runs`, `jobs`).
`images.ImageStore` keeps the content-addressed image files next to it.
"""

from mmrec_core.store.database import LATEST_VERSION, MIGRATIONS, Store, StoreError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Store", "StoreError"]
