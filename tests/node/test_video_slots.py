"""Video slots: the camera rate from stamps and frame numbers, frames held over gaps."""

from __future__ import annotations

import pytest

from drivingseg.node.video_slots import MAX_HOLD_S, VideoSlots, camera_rate_hz

MS = 1_000_000


def test_camera_rate_counts_the_frames_dropped_between_masks() -> None:
    """Masks of frames 0, 2, 5, 9 of a 10 Hz camera: 10 Hz, not the 5 Hz of the smallest
    step between them."""
    assert camera_rate_hz([0, 200 * MS, 500 * MS, 900 * MS], [0, 2, 5, 9]) == pytest.approx(10)


def test_camera_rate_without_frame_numbers_or_across_a_loop_is_the_smallest_step() -> None:
    assert camera_rate_hz([0, 200 * MS, 250 * MS], [-1, -1, -1]) == pytest.approx(20)
    assert camera_rate_hz([0, 100 * MS, 300 * MS], [28, 29, 0]) == pytest.approx(10)
    assert camera_rate_hz([5, 5], [0, 1]) is None
    assert camera_rate_hz([], []) is None


def test_slots_follow_the_stamps_and_never_collide() -> None:
    slots = VideoSlots(10.0, True, "video")
    placed = [slots.place(s * MS) for s in (0, 100, 400, 420, 430, 700)]
    assert placed == [0, 1, 4, 5, 6, 7]


def test_slots_without_hold_are_one_after_another() -> None:
    slots = VideoSlots(10.0, False, "video")
    assert [slots.place(s * MS) for s in (0, 500, 2000)] == [0, 1, 2]


def test_a_long_gap_is_held_for_at_most_the_limit_and_later_masks_follow_on() -> None:
    """A bag paused for a minute: the frame is held for MAX_HOLD_S, not 60 s."""
    slots = VideoSlots(10.0, True, "video")
    placed = [slots.place(s * MS) for s in (0, 100, 60_100, 60_200)]
    longest = round(MAX_HOLD_S * 10)
    assert placed == [0, 1, 1 + longest, 2 + longest]
