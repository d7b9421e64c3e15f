"""A batch job on Ray Data: the work as Parquet shards, engine actors mapping them, the results as Parquet.

A job lives in a folder (`ShardJob`):

    in/<shard>.parquet            the work: item or user rows, one shard per model batch or group of users
    out/<shard>/<table>.parquet   what a worker made of it: rows of the store's tables, plus `failed.parquet`

A shard is named by the hash of what it holds, so a re-run of the same work finds the shards that came back
and maps only the others (resumable by shard); the driver imports every result in one transaction and then
removes the folder. Workers are actors (`ShardWorker`) that each load one engine once and map one shard per
call, on a GPU of their own where the cluster has GPUs. On a cluster of several machines the job folder must
be one every node sees (`--job-dir` on shared storage), and each node needs this package and its models.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from mmrec_core.core.hashing import input_hash
from mmrec_core.core.progress import Progress

BACKENDS = ("local", "ray")
INSTALL = "pip install -e '.[scale]'  (or: pip install 'ray[data]')"


class MissingExtraError(ModuleNotFoundError):
    """An optional extra that the chosen option needs is not installed."""


@dataclass
class ScaleConfig:
    """Where a batch stage runs: in this process, or as a Ray Data job."""

    backend: str = field(
        default="local",
        metadata={
            "help": f"local: in this process; ray: a Ray Data job of engine actors (needs the scale extra: {INSTALL}).",
            "choices": BACKENDS,
        },
    )
    address: str = field(
        default="",
        metadata={"help": "ray: the cluster to join ('auto', or 'ray://host:10001'); none: start one on this machine."},
    )
    actors: int = field(
        default=0,
        metadata={
            "help": "ray: engine actors (0: one per GPU where the cluster has GPUs, else one per "
            "--cpus-per-actor CPUs)."
        },  # fmt: skip
    )
    cpus_per_actor: int = field(default=1, metadata={"help": "ray: CPUs (and torch threads) of each engine actor."})
    job_dir: str = field(
        default="",
        metadata={
            "help": "ray: folder of the jobs' Parquet shards (default <data dir>/jobs); on a cluster of "
            "several machines, a folder every node sees."
        },  # fmt: skip
    )

    def jobs_dir(self, data_dir: Path) -> Path:
        return Path(self.job_dir) if self.job_dir else Path(data_dir) / "jobs"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"Unknown backend '{self.backend}'; use one of {', '.join(BACKENDS)}.")
        if self.actors < 0 or self.cpus_per_actor < 1:
            raise ValueError("--actors must be 0 or more and --cpus-per-actor at least 1.")


def require_ray():
    """The `ray` module, or a clear error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(f"--backend ray needs Ray, an optional extra: {INSTALL}; then run again.") from exc
    return ray


class ShardJob:
    """The folder of one job: its input shards and the results that came back."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.inputs, self.outputs = self.root / "in", self.root / "out"

    @classmethod
    def prepare(
        cls,
        jobs_dir: Path,
        kind: str,
        dataset: str,
        params: dict,
        shard_keys: list[list[str]],
        build: Callable[[int], pd.DataFrame],
    ) -> ShardJob:
        """The job for this work (one folder per kind, data set and params), with its shards written.

        `shard_keys[i]`: the keys (input hashes) of shard i's rows, which name it; `build(i)`: its rows, asked for
        only when the shard is not there yet (an interrupted run's shards are kept, with their results). Shards
        of other work are removed, so what comes back can only be from this work.
        """
        job = cls(Path(jobs_dir) / f"{kind}-{_safe(dataset)}-{input_hash(params)[:12]}")
        job.inputs.mkdir(parents=True, exist_ok=True)
        job.outputs.mkdir(exist_ok=True)
        (job.root / "job.json").write_text(json.dumps({"kind": kind, "dataset": dataset, "params": params}, indent=1))
        names = [f"shard-{input_hash(keys)[:16]}" for keys in shard_keys]
        for stale in set(job.shards()) - set(names):
            (job.inputs / f"{stale}.parquet").unlink()
            shutil.rmtree(job.outputs / stale, ignore_errors=True)
        for i, name in enumerate(names):
            path = job.inputs / f"{name}.parquet"
            if not path.exists():
                _write_atomic(build(i), path)
        return job

    def shards(self) -> list[str]:
        return sorted(p.stem for p in self.inputs.glob("*.parquet"))

    def pending(self) -> list[str]:
        """Shards whose results have not come back."""
        return [s for s in self.shards() if not (self.outputs / s).is_dir()]

    def rows(self, shard: str) -> int:
        return pq.ParquetFile(self.inputs / f"{shard}.parquet").metadata.num_rows

    def read_shard(self, shard: str) -> pd.DataFrame:
        path = self.inputs / f"{shard}.parquet"
        if not path.exists():
            raise FileNotFoundError(
                f"Shard {path} is not visible on this node: on a cluster of several machines, put --job-dir on "
                "storage every node sees."
            )
        return pd.read_parquet(path)

    def write_result(self, shard: str, tables: dict[str, pd.DataFrame]) -> None:
        """A shard's results, all tables at once: the folder appears whole (written aside, then renamed)."""
        part = self.outputs / f"{shard}.part-{os.getpid()}"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        for table, frame in tables.items():
            frame.to_parquet(part / f"{table}.parquet", index=False)
        os.replace(part, self.outputs / shard)

    def results(self, table: str) -> pd.DataFrame:
        """Every shard's rows of `table`, in shard order (empty when none came back)."""
        frames = [pd.read_parquet(p) for s in self.shards() if (p := self.outputs / s / f"{table}.parquet").exists()]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    part = path.with_name(path.name + ".part")
    frame.to_parquet(part, index=False)
    os.replace(part, path)


class ShardWorker:
    """A Ray actor holding one engine; each call maps shards (one per row of the batch) and writes their results.

    Subclasses implement `process(frame) -> {table: rows}`; a table `failed` (key, reason) lists what was skipped.
    """

    def __init__(self, job_root: str, make_engine: Callable[[], Any], threads: int, **params: Any) -> None:
        import torch

        torch.set_num_threads(threads)  # the actor's share of the node, not every core
        self.job = ShardJob(Path(job_root))
        self.engine = make_engine()
        self.setup(**params)

    def setup(self, **params: Any) -> None:
        """Keep what `process` needs of the job's parameters (given once per actor)."""
        raise NotImplementedError

    def process(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        raise NotImplementedError

    def __call__(self, batch: dict) -> dict:
        rows, failed = [], []
        for shard in batch["shard"]:
            frame = self.job.read_shard(shard)
            tables = self.process(frame)
            self.job.write_result(shard, tables)
            failed.append(len(tables.get("failed", ())))
            rows.append(len(frame))
        return {"shard": list(batch["shard"]), "rows": rows, "failed": failed}


def run_job(
    job: ShardJob,
    worker: type[ShardWorker],
    make_engine: Callable[[], Any],
    scale: ScaleConfig,
    params: dict,
    progress: Progress | None = None,
    unit: str = "rows",
) -> None:
    """Map the job's pending shards with `worker` actors (each its own engine from `make_engine`)."""
    pending = job.pending()
    rows = {s: job.rows(s) for s in job.shards()}
    total = sum(rows.values())
    done = total - sum(rows[s] for s in pending)
    if progress:
        progress(done, total, f"{len(pending)} of {len(rows)} shards to map, {done} {unit} came back before")
    if not pending:
        return
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=scale.address or None, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts shards
        gpus = ray.cluster_resources().get("GPU", 0)
        cpus = ray.cluster_resources().get("CPU", 1)
        actors = scale.actors or (int(gpus) if gpus >= 1 else max(1, int(cpus // scale.cpus_per_actor)))
        actors = min(actors, len(pending))
        mapped = ray.data.from_items([{"shard": s} for s in pending]).map_batches(
            worker,
            batch_size=1,
            fn_constructor_kwargs={
                "job_root": str(job.root),
                "make_engine": make_engine,
                "threads": scale.cpus_per_actor,
                **params,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=scale.cpus_per_actor,
            num_gpus=1 if gpus >= 1 else 0,
        )
        for row in mapped.iter_rows():
            done += row["rows"]
            if progress:
                failed = f", {row['failed']} failed in this shard" if row["failed"] else ""
                progress(done, total, f"{actors} actor{'s' if actors > 1 else ''}{failed}")
    except Exception as exc:
        exc.add_note(f"The shards that came back are kept in {job.root}; run the same command again to resume.")
        raise
    finally:
        if started:
            ray.shutdown()
