"""Regenerate a data set's section of RESULTS.md from the database: `mmrec report DATASET --markdown`, spliced in.

    python scripts/update_results.py sample                      # the data folder in MMREC_DATA_DIR
    python scripts/update_results.py hm --data-dir /data/hm-run   # another data folder

Only the text between the data set's BEGIN/END markers is replaced; the reading written around it stays.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from mmrec_core.cli.main import main as main_cli

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"


def markers(dataset: str) -> tuple[str, str]:
    return f"<!-- BEGIN mmrec report {dataset} -->", f"<!-- END mmrec report {dataset} -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--data-dir", help="the data folder holding the eval runs (default: MMREC_DATA_DIR)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp())
    command = (["--data-dir", args.data_dir] if args.data_dir else []) + ["report", args.dataset, "--markdown"]
    if main_cli([*command, "--out", str(out / f"{args.dataset}.html")]) not in (0,):
        sys.exit(f"mmrec report {args.dataset} failed: RESULTS.md is unchanged.")
    section = (out / f"{args.dataset}.md").read_text(encoding="utf-8")
    begin, end = markers(args.dataset)
    text = RESULTS.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        sys.exit(f"RESULTS.md has no '{begin}' ... '{end}' markers: add them where the {args.dataset} section goes.")
    RESULTS.write_text(pattern.sub(lambda _: f"{begin}\n{section}{end}", text), encoding="utf-8")
    print(f"RESULTS.md: the {args.dataset} section regenerated")


if __name__ == "__main__":
    main()
