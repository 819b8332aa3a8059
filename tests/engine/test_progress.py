"""The time a run has left: its recent pace, evaluations counted, pauses not."""
import pytest

from lmcore.progress import RemainingTime


def test_the_pace_is_averaged_over_recent_steps_not_the_last_one():
    left = RemainingTime(max_steps=1000, eval_interval=10_000, window_s=30)
    for step in range(1, 101):  # 0.1 s a step, with one slow step at the end
        left.steps(step * 0.1 + (0.5 if step == 100 else 0.0), step)
    assert left.seconds_per_step() == pytest.approx((10.5 - 0.1) / 99)
    assert left.seconds_left(100) == pytest.approx(900 * (10.4 / 99) + 0.0)


def test_old_steps_leave_the_window():
    left = RemainingTime(max_steps=1000, eval_interval=10_000, window_s=5)
    for step in range(1, 51):
        left.steps(step * 1.0, step)  # 1 s a step ...
    for step in range(51, 101):
        left.steps(50 + (step - 50) * 0.1, step)  # ... then 0.1 s a step
    assert left.seconds_per_step() == pytest.approx(0.1, rel=0.05)


def test_evaluations_left_are_counted_at_their_measured_length():
    left = RemainingTime(max_steps=95, eval_interval=20)
    left.steps(1.0, 10)
    left.steps(2.0, 20)
    left.evaluated(5.0, 20)  # a 3 s evaluation after step 20
    left.steps(6.0, 30)
    assert left.evaluations_left(30) == 4  # at 40, 60, 80 and the last step, 95
    assert left.seconds_per_step() == pytest.approx(0.1)  # the evaluation is not in the step pace
    assert left.seconds_left(30) == pytest.approx(65 * 0.1 + 4 * 3.0)
    assert left.evaluations_left(95) == 0 and left.seconds_left(95) == 0


def test_a_pause_is_not_pace():
    left = RemainingTime(max_steps=100, eval_interval=1000)
    left.steps(0.0, 0)
    left.steps(1.0, 10)
    left.paused()
    left.steps(3600.0, 11)  # resumed an hour later
    assert left.seconds_per_step() == pytest.approx(0.1)  # what was measured before the pause
    left.steps(3600.5, 16)
    assert left.seconds_per_step() == pytest.approx(0.1)


def test_nothing_to_say_before_two_steps():
    left = RemainingTime(max_steps=100, eval_interval=10)
    assert left.seconds_left(0) is None
    left.steps(1.0, 1)
    assert left.seconds_left(1) is None
