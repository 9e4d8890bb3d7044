"""The ``drivingseg`` command line: one entry point, one module per subcommand."""

from drivingseg.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
