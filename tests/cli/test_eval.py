"""``drivingseg eval`` as a command: what it writes, whatever happens to its stdout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from drivingseg.cli.main import build_parser


class _ClosedPipe:
    """A stdout whose reader has left (``drivingseg eval ... | head -n 1``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_json_report_is_written_even_when_stdout_is_gone(
    tmp_path: Path, camvid_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table used to be printed before the JSON was written, so piping the summary into
    ``head`` killed the command with SIGPIPE after scoring and the report was lost."""
    val, annot = tmp_path / "val", tmp_path / "valannot"
    val.mkdir()
    annot.mkdir()
    name = sorted(p.name for p in (camvid_root / "val").glob("*.png"))[0]
    shutil.copy(camvid_root / "val" / name, val / name)
    shutil.copy(camvid_root / "valannot" / name, annot / name)
    out = tmp_path / "eval.json"
    args = build_parser().parse_args(["eval", "--data", str(val), "--json", str(out)])
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    with pytest.raises(BrokenPipeError):
        args.func(args)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["frames"] == 1 and report["per_frame"][0]["frame"] == Path(name).stem
