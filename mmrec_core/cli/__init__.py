"""The `mmrec` command line: one module per command group, registered in `main`."""

from mmrec_core.cli.main import main

__all__ = ["main"]
