"""Video slots: the camera rate from stamps and frame numbers, frames held over gaps."""

from __future__ import annotations

import pytest

from drivingseg.node.video_slots import MAX_HOLD_S, VideoSlots, camera_rate_hz

MS = 1_000_000


def test_camera_rate_counts_the_frames_dropped_between_masks() -> None:
    """Masks of frames 0, 2, 5, 9 of a 10 Hz camera: 10 Hz, not the 5 Hz of the smallest
    step between them."""
    assert camera_rate_hz([0, 200 * MS, 500 * MS, 900 * MS], [0, 2, 5, 9]) == pytest.approx(10)


JITTER_MS = (0.0, -6.2, 4.0, 3.1, -5.0, 6.0, -2.0, 4.5, -5.8, 1.0) * 3
"""Camera stamp jitter of a 10 Hz drive, as real camera stamps have (a few ms)."""


def jittered_stamps_ns(count: int = 30) -> list[int]:
    return [round((100 * k + JITTER_MS[k]) * MS) for k in range(count)]


def test_camera_rate_of_jittered_stamps_is_the_mean_not_the_shortest_step() -> None:
    """The first masks of a 10 Hz drive stamped 0, 93.8, 204.0, 303.1 ms: the shortest step
    made it a 10.66 fps video, 7 % faster than the drive, with two repeated frames."""
    stamps = jittered_stamps_ns(4)
    assert camera_rate_hz(stamps, [0, 1, 2, 3]) == pytest.approx(10.0, rel=0.02)
    assert camera_rate_hz(stamps[:2] + stamps[3:], [0, 1, 3]) == pytest.approx(10.0, rel=0.02)


def test_camera_rate_leaves_out_a_frame_missing_from_a_bag() -> None:
    """A bag numbers its messages: a frame the recorder lost is a 200 ms step of one number."""
    stamps = [0, 100 * MS, 300 * MS, 400 * MS]
    assert camera_rate_hz(stamps, [0, 1, 2, 3]) == pytest.approx(10.0)


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


@pytest.mark.parametrize("fps", [9.7, 10.0, 10.66])
def test_slots_of_numbered_frames_follow_the_numbers_not_the_jittered_stamps(fps: float) -> None:
    """30 jittered frames of a 10 Hz drive in a video at a rate measured a little off: one
    slot per frame number, held over the dropped ones (frames 10-13), nothing repeated."""
    stamps = jittered_stamps_ns()
    numbers = [k for k in range(30) if not 10 <= k <= 13]
    slots = VideoSlots(fps, True, "video")
    assert [slots.place(stamps[k], k) for k in numbers] == numbers


def test_slots_across_a_loop_follow_the_stamps_then_the_numbers_again() -> None:
    slots = VideoSlots(10.0, True, "video")
    placed = [slots.place(s * MS, n) for s, n in ((0, 28), (100, 29), (200, 0), (400, 2))]
    assert placed == [0, 1, 2, 4]


def test_slots_of_a_bag_hold_over_a_frame_it_lost_though_its_numbers_go_on_by_one() -> None:
    slots = VideoSlots(10.0, True, "video")
    placed = [slots.place(s * MS, n) for s, n in ((0, 0), (100, 1), (300, 2), (400, 3))]
    assert placed == [0, 1, 3, 4]
