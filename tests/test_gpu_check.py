"""bench/gpu_check.py --dry-run: the GPU check's every path (bf16 and 4-bit scoring, generation, LoRA steps, the VLM,
the builtin architecture) runs on tiny configs on the CPU, so the one device call it is written for does not fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_the_dry_run_measures_every_row(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", BENCH)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    rows = gpu_check.main(["--dry-run", "--work-dir", str(tmp_path)])
    tasks = {(r["model"].split()[0], r["task"].split(",")[0].split(":")[0]) for r in rows}
    expected = {("Qwen2.5-7B", "yes/no"), ("Qwen2.5-7B", "listwise"), ("Qwen2.5-7B", "LoRA step"),
                ("Qwen2.5-VL-7B", "describe one 448 px photo (256 image tokens)"), ("SmolLM2-135M", "yes/no")}
    assert expected <= tasks
    assert any("4-bit NF4" in r["model"] for r in rows)  # bitsandbytes runs 4-bit inference on the CPU too
    assert all(r["ms"] > 0 for r in rows)
    assert "DRY RUN" in capsys.readouterr().out
