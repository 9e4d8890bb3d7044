"""A short synthetic drive shared by the tests of this folder (rendering costs ~0.3 s a frame)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivingseg.sensors.synthetic.drive import SyntheticDrive


@pytest.fixture(scope="module")
def drive() -> Iterator[SyntheticDrive]:
    with SyntheticDrive(seed=3, frames=20) as d:
        yield d
