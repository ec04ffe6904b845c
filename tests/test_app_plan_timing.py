"""The plan line comes by the clock however slow the steps, and every epoch line says
the time left: timed with steps made deliberately slow."""
import time

import pytest

from odenets.app.commands.train import fit
from odenets.app.run import plan_timer
from odenets.app.run.train_step import TrainStep
from odenets.app.settings.config import Config


def slow_steps(monkeypatch, seconds):
    """Make step i (from 1) take ``seconds(i)`` longer; returns the steps' end times."""
    done, real = [], TrainStep.__call__

    def step(self, *args, **kwargs):
        reading = real(self, *args, **kwargs)
        time.sleep(seconds(len(done) + 1))
        done.append(time.perf_counter())
        return reading

    monkeypatch.setattr(TrainStep, "__call__", step)
    return done


def run(tmp_path, capsys, **settings):
    cfg = Config(model="resnet8", epochs=2, batch_size=20, train_subset=160, out=str(tmp_path / "run"), **settings)
    fit(cfg)
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith(("plan", "epoch"))]


@pytest.fixture
def short_clock(monkeypatch):
    """The plan's clock scaled down 15 times, so the test takes seconds, not minutes."""
    monkeypatch.setattr(plan_timer, "PLAN_SECONDS", 2.0)
    monkeypatch.setattr(plan_timer, "EARLY", 1.0)
    monkeypatch.setattr(plan_timer, "MARGIN", 0.2)


def test_a_first_step_slower_than_the_plans_deadline_still_gets_a_plan_in_time(tmp_path, capsys, monkeypatch,
                                                                               short_clock):
    said = []
    real = plan_timer.PlanTimer._say

    def say(self):
        said.append(time.perf_counter())
        real(self)

    monkeypatch.setattr(plan_timer.PlanTimer, "_say", say)
    done = slow_steps(monkeypatch, lambda i: 4.0 if i == 1 else 0.0)
    lines = run(tmp_path, capsys)
    assert said[0] < done[0]  # printed while the first step still ran
    assert said[0] - (done[0] - 4.0) < plan_timer.PLAN_SECONDS  # within the deadline of the step's start
    assert "the first step, still running: at least this" in lines[0] and lines[0].startswith("plan: resnet8")
    assert lines[1].startswith("plan, refined: about") and "(from 5 timed steps)" in lines[1]
    assert [line.split()[1] for line in lines[2:]] == ["1/2", "2/2"]


def test_slow_steps_give_the_plan_from_the_steps_done_then_refine_it(tmp_path, capsys, monkeypatch, short_clock):
    said = []  # (steps done, seconds since the timer started, when it started) at each plan line
    real = plan_timer.PlanTimer._say

    def say(self):
        said.append((self.count, time.perf_counter() - self.started, self.started))
        real(self)

    monkeypatch.setattr(plan_timer.PlanTimer, "_say", say)
    done = slow_steps(monkeypatch, lambda i: 0.4)
    lines = run(tmp_path, capsys)
    # the line comes at the first step that ends EARLY (1 s) or more after the start: with 0.4 s
    # a step, the 2nd or the 3rd (the 1st too on a CPU so busy that its real work took 0.6 s)
    count, at, started = said[0]
    assert 1 <= count <= 3 and at >= plan_timer.EARLY
    if count > 1:
        assert done[count - 2] - started < plan_timer.EARLY  # not a step earlier
    basis = "(from the first step, warm-up included)" if count == 1 else f"(from {count - 1} timed step"
    assert "8 steps per epoch" in lines[0] and basis in lines[0]
    assert "for the run's 2 epochs" in lines[0]
    assert lines[1].startswith("plan, refined: about") and "(from 5 timed steps)" in lines[1]
    per_epoch = float(lines[1].split("about ")[1].split(" s per epoch")[0])
    assert 8 * 0.4 <= per_epoch <= 8 * 0.4 * 3  # the sleeps, and the steps' own time on a busy CPU
    # every epoch line says what is left: the mean epoch so far, times the epochs left
    first, second = lines[2], lines[3]
    seconds = float(first.split("  ")[-2].rstrip("s"))
    left = float(first.split("  ")[-1].split(" s left")[0])
    assert left == pytest.approx(seconds, rel=0.1, abs=0.2) and second.endswith("done")


def test_fast_steps_give_one_plan_line_from_five_timed_steps(tmp_path, capsys):
    lines = run(tmp_path, capsys)
    assert lines[0].startswith("plan: ") and "(from 5 timed steps)" in lines[0]
    assert not any(line.startswith("plan, refined") for line in lines)
