"""What each pipeline stage cost on this machine, and what 10x and 100x the data would cost at that rate.

Every `mmrec pipeline` stage that did work records a run of kind 'stage' (`pipeline.stages.record_stage_cost`):
wall and CPU seconds and the work done (items textualized, block summaries written, training interactions,
test users), with the exponent by which the stage's time grows with that work. A resumed stage adds runs and
the table sums them; a stage killed midway records nothing for its part and its resumed run only the work it
did, so the rate stays right. The projection is the measured time scaled by the exponent: the same machine and
settings, nothing else assumed.
"""

from __future__ import annotations

import json

import pandas as pd

from mmrec_core.store.workspace import Workspace

COLUMNS = ["stage", "runs", "work", "unit", "wall s", "CPU s", "CPU / wall", "per unit s", "at 10x", "at 100x"]
_ORDER = ("textualize", "profiles", "graph", "models", "eval", "sft")


def _duration(seconds: float) -> str:
    """Seconds as the unit a reader plans with."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def cost_table(ws: Workspace, dataset: str, protocol_id: str) -> pd.DataFrame:
    """One row per stage with recorded runs: work, seconds, rate and the 10x / 100x projections (COLUMNS)."""
    runs = ws.store.runs_of_kind(dataset, protocol_id, "stage")
    if runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    metrics = ws.store.run_metrics(list(runs["run_id"]), part="all")
    values = metrics.pivot_table(index="run_id", columns="name", values="value", aggfunc="sum")
    runs = runs.join(values, on="run_id")
    rows = []
    for stage, group in sorted(runs.groupby("method"), key=lambda g: _ORDER.index(g[0]) if g[0] in _ORDER else 99):
        params = json.loads(group["params"].iloc[0])
        work, wall, cpu = group["work"].sum(), group["wall_s"].sum(), group["cpu_s"].sum()
        per = wall / work if work else None
        scale = params.get("exponent", 1)
        rows.append({
            "stage": stage, "runs": len(group), "work": int(work), "unit": params.get("unit", ""),
            "wall s": round(wall, 1), "CPU s": round(cpu, 1), "CPU / wall": round(cpu / wall, 2) if wall else None,
            "per unit s": round(per, 3) if per is not None else None,
            "at 10x": _duration(wall * 10**scale) if work else "",
            "at 100x": _duration(wall * 100**scale) if work else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
