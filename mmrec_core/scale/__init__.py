"""The scale path: the embarrassingly parallel stages (textualization, bulk LLM scoring) as Ray Data batch jobs.

`jobs.py` holds what every job shares (its settings, its folder of Parquet shards, the Ray run); `textualize.py`
and `scoring.py` each hold one job's worker and driver. Ray is an optional extra (`pip install -e ".[scale]"`).
"""
