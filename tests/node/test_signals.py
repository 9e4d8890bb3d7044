"""SIGINT or SIGTERM in the middle of recording: ``drivingseg launch`` in a subprocess
stops cleanly, every frame it finished is in an MCAP that the ``mcap`` library reads, and
the process reports the signal in its exit status."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_recording_leaves_a_readable_mcap(
    sig: signal.Signals, kitti_raw_drive: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drivingseg", "launch", "replay_kitti", f"input:={kitti_raw_drive}",
         f"weights:={tiny_weights}", f"out_dir:={out}", "video:=false", "status:=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list((out / "masks").glob("*.png"))) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no masks written in 60 s"
            time.sleep(0.05)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, stderr
    assert f"{sig.name}: stopping" in stderr
    assert "latency of" in stdout

    topics: Counter[str] = Counter()
    stamps: dict[str, set[int]] = {}
    with (out / "masks.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_summary() is not None
        for _, channel, message, msg in reader.iter_decoded_messages():
            topics[channel.topic] += 1
            if channel.topic in ("/segmentation/detections", "/tf_static"):  # no header
                stamp = message.log_time
            else:
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            stamps.setdefault(channel.topic, set()).add(stamp)
    n = topics["/segmentation/mask"]
    assert 3 <= n < 30, "the signal came mid-run"
    # Every frame in the file is complete: image, mask and overlay of each stamp.
    assert stamps["/camera/image"] == stamps["/segmentation/mask"] == stamps[
        "/segmentation/overlay/compressed"]
    # ... and it is every frame the graph finished: the PNGs and the latency rows agree.
    pngs = {int(p.stem) for p in (out / "masks").glob("*.png")}
    rows = {int(r["stamp_ns"]) for r in csv.DictReader((out / "latency.csv").open())}
    assert stamps["/segmentation/mask"] == pngs == rows
    assert topics["/diagnostics"] >= 1
    # The proposals' boxes of the finished frames are recorded too.
    assert stamps["/segmentation/detections"] <= stamps["/segmentation/mask"]
    assert topics["/segmentation/detections"] >= 3
