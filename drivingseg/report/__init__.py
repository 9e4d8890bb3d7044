"""Offline accuracy reports over drives and fleets of drives (``drivingseg report``).

``inputs`` classifies and checks what was given, ``worker`` scores chunks of frames,
``fleet`` runs chunks on local processes or Ray, ``aggregate`` merges them exactly,
``write`` writes JSON, CSV and the HTML page (``html`` with ``html_cells`` and ``html_gallery``,
``plots``, ``gallery``), ``browser`` renders that page in headless Chromium. The report dict is
described in ``docs/REPORT.md``.
"""

from drivingseg.report.aggregate import FORMAT, build_report
from drivingseg.report.fleet import FleetResult, TaskFailure, run_tasks
from drivingseg.report.inputs import ReportInput, classify_inputs
from drivingseg.report.worker import ChunkTask, run_chunk
from drivingseg.report.write import make_report, write_report

__all__ = [
    "FORMAT",
    "ChunkTask",
    "FleetResult",
    "ReportInput",
    "TaskFailure",
    "build_report",
    "classify_inputs",
    "make_report",
    "run_chunk",
    "run_tasks",
    "write_report",
]
