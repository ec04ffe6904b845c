"""A study spread out: `odenets ablate --jobs N` (runs at once, in separate processes)
and `--shard I/N` (a share of the runs, collected afterwards) give the runs and the
table of one study trained one run after another; an interrupted parallel study
resumes; bad values are usage errors. Seeded runs on one CPU thread are deterministic,
so "the same" is exact, apart from the times."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from odenets.app.commands import ablate, cli
from odenets.app.errors import RunFailed
from odenets.app.run import jobs
from odenets.app.run.job_progress import JobProgress
from odenets.app.settings.config import Config

ROOT = Path(__file__).parents[1]
ARGS = ["ablate", "--model", "resnet8", "--solvers", "euler,midpoint", "--seeds", "2", "--epochs", "2",
        "--batch-size", "64"]
RUNS = [(solver, seed) for solver in ("euler", "midpoint") for seed in range(2)]  # the plan's order


def odenets(*argv, threads_env=True, wait=True):
    """``python -m odenets`` in a new process, on one thread (OMP_NUM_THREADS=1) unless
    ``threads_env`` is False; the finished process, or the running one without ``wait``."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT)
    if threads_env:
        env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "odenets", *map(str, argv)]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def study(out: Path) -> dict:
    """What a study computed, without the times: the table, and each run's settings and history."""
    report = json.loads((out / "ablation.json").read_text())
    table = [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in report["table"]]
    runs = {name: [{"config": {k: v for k, v in run["config"].items() if k not in ("out", "device", "quiet")},
                    "test_acc": run["test_acc"], "test_loss": run["test_loss"],
                    "history": [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in run["history"]]}
                   for run in runs] for name, runs in report["runs"].items()}
    return {"table": table, "runs": runs}


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory):
    """The study trained as before: one run after another in one process."""
    out = tmp_path_factory.mktemp("one-by-one")
    done = odenets(*ARGS, "--jobs", 1, "--out", out)
    assert done.returncode == 0, done.stderr
    assert ": started (" not in done.stdout  # one job: the lines as before
    result = study(out)
    assert {run["config"]["threads"] for runs in result["runs"].values() for run in runs} == {1}  # recorded
    return result


@pytest.mark.slow
def test_two_jobs_give_the_runs_of_one(tmp_path, one_by_one):
    out = tmp_path / "jobs"
    done = odenets(*ARGS, "--jobs", 2, "--threads", 1, "--out", out, threads_env=False)
    assert done.returncode == 0, done.stderr
    for solver, seed in RUNS:  # every job's start and end shown
        assert f"{solver} seed {seed}: started (cpu, 1 thread(s))" in done.stdout
        assert f"{solver} seed {seed}: test accuracy" in done.stdout
        for epoch in (1, 2):  # and its progress, a line an epoch where no terminal shows bars
            assert f"{solver} seed {seed}: epoch {epoch}/2, " in done.stdout
    assert "left" in done.stdout  # after epoch 1: the time still to go
    assert study(out) == one_by_one

    quiet = odenets(*ARGS, "--jobs", 2, "--out", out, "--quiet")  # all reused, and quiet stays quiet
    assert quiet.returncode == 0 and "Traceback" not in quiet.stderr
    assert ": started (" not in quiet.stdout and ": test accuracy" not in quiet.stdout


@pytest.mark.slow
def test_shards_collected_afterwards_give_the_table_of_one_study(tmp_path, one_by_one):
    out = tmp_path / "sharded"
    shards = [odenets(*ARGS, "--shard", f"{i}/2", "--out", out, wait=False) for i in (1, 2)]  # at once
    for i, shard in enumerate(shards, 1):
        stdout, stderr = shard.communicate(timeout=600)
        assert shard.returncode == 0, stderr
        mine = [f"{solver} seed {seed}" for k, (solver, seed) in enumerate(RUNS) if k % 2 == i - 1]
        assert f"shard {i}/2 trained {len(mine)} of the study's {len(RUNS)} runs: {', '.join(mine)}" in stdout
        assert "without --shard collects the table" in stdout and "test acc (%)" not in stdout
    assert not (out / "ablation.json").exists()

    collected = odenets(*ARGS, "--out", out)
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout.count("(reused)") == len(RUNS)
    assert study(out) == one_by_one


@pytest.mark.slow
def test_a_study_stopped_part_way_resumes(tmp_path, one_by_one):
    out = tmp_path / "stopped"
    proc = odenets(*ARGS, "--jobs", 2, "--out", out, wait=False)
    for line in proc.stdout:  # until the first run has finished
        if "test accuracy" in line:
            break
    proc.send_signal(signal.SIGTERM)  # to the study's process alone, as a scheduler may: it tells its jobs
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "rerun the same command to go on" in stderr
    finished = sorted(p.parent.name for p in out.glob("runs/*/*/result.json"))
    assert 1 <= len(finished) < len(RUNS)
    assert not list(out.glob("runs/*/*/.lock"))  # every job let go of its folder

    again = odenets(*ARGS, "--jobs", 2, "--out", out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(reused)") == len(finished)
    assert study(out) == one_by_one


def test_a_terminal_shows_a_bar_per_running_job():
    screen = io.StringIO()
    shown = JobProgress(screen, bars=True)
    shown.start("a", "euler seed 0")
    shown.start("b", "lm seed 0")
    shown.update("a", 3, 10, 2)
    shown.update("b", 7, 10, 2)
    text = screen.getvalue()
    assert "euler seed 0" in text and "3/10" in text and "lm seed 0" in text and "7/10" in text
    assert [job["position"] for job in shown.jobs.values()] == [0, 1]
    shown.end("a")
    shown.start("c", "euler seed 1")  # takes the freed line
    assert shown.jobs["c"]["position"] == 0
    shown.close()  # a study stopped part-way ends what it shows
    assert not shown.jobs


def test_bad_jobs_and_shards_are_usage_errors(tmp_path, capsys):
    for flags, allowed in ((["--jobs", "0"], "--jobs must be at least 1"),
                           (["--shard", "0/2"], "1 <= I <= N"), (["--shard", "3/2"], "1 <= I <= N"),
                           (["--shard", "2"], "--shard takes I/N"), (["--shard", "a/b"], "--shard takes I/N"),
                           (["--threads", "0"], "--threads must be at least 1")):
        assert cli.main(ARGS + flags + ["--out", str(tmp_path)]) == 2, flags
        err = capsys.readouterr().err
        assert allowed in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # refused before anything was trained


def test_shards_split_the_plan_deterministically():
    plan = list(range(7))
    parts = [jobs.share(plan, (i, 3)) for i in (1, 2, 3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(parts, [])) == plan
    assert jobs.share(plan[:1], (2, 2)) == []  # more shards than runs: some have none


def test_each_job_gets_its_gpu_and_each_run_one_thread(monkeypatch):
    cfg = Config(model="resnet8")
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    monkeypatch.setattr(jobs, "cores", lambda: 8)
    assert jobs.default_jobs(None) == jobs.default_jobs("cpu") == 8  # a run per core
    assert jobs.placed(cfg, 0).device is None and jobs.placed(cfg, 0).quiet
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert [jobs.placed(cfg, slot).device for slot in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert jobs.placed(Config(device="cuda:1"), 0).device == "cuda:1"  # a device named is kept
    assert jobs.placed(Config(device="cpu"), 1).device == "cpu"
    assert jobs.default_jobs(None) == 2 and jobs.default_jobs("cpu") == 8 and jobs.default_jobs("cuda:1") == 1
    for cores in (1, 2, 64):  # the study's runs are the same on every machine: one thread each
        monkeypatch.setattr(jobs, "cores", lambda: cores)
        study = ablate.plan(cli.parser().parse_args(["ablate", "--device", "cpu"]))
        assert study.jobs == cores and {cfg.threads for cfg in study.runs} == {1} and len(study.runs) == 35
    study = ablate.plan(cli.parser().parse_args(["ablate", "--threads", "3", "--jobs", "2"]))
    assert study.jobs == 2 and {cfg.threads for cfg in study.runs} == {3}  # as asked


def test_a_log_gets_a_line_per_completed_epoch_and_a_resumed_job_only_its_new_ones(capsys):
    shown = JobProgress(io.StringIO(), bars=False)
    shown.start("a", "euler seed 0")
    for done in range(1, 31):  # 3 epochs of 10 steps
        shown.update("a", done, 30, 3)
    shown.start("b", "lm seed 0")  # resumed after 2 of its 4 epochs
    for done in range(21, 41):
        shown.update("b", done, 40, 4)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "euler seed 0: epoch 1/3", "euler seed 0: epoch 2/3", "euler seed 0: epoch 3/3",
        "lm seed 0: epoch 3/4", "lm seed 0: epoch 4/4"]
    assert "left" in lines[0] and "left" not in lines[2]


def workers(pid: int) -> list[int]:
    """The ids of the worker processes that process ``pid`` started (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by its new parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def started_training(proc, out: Path) -> list[int]:
    """Wait until study ``proc`` has two workers and one has saved a checkpoint; their ids."""
    for _ in proc.stdout:  # a line as each job starts and completes an epoch
        running = workers(proc.pid)
        if len(running) == 2 and list(out.glob("runs/*/*/checkpoint.pt")):
            return running
    raise AssertionError(f"the study ended before two of its jobs were training: {proc.wait()}")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_the_workers_of_a_study_killed_save_and_stop_with_it(tmp_path, one_by_one):
    out = tmp_path / "killed"
    proc = odenets(*ARGS, "--jobs", 2, "--out", out, wait=False)
    running = started_training(proc, out)
    killed = time.monotonic()
    proc.kill()  # kill -9: no handler runs in the study's process
    stdout, stderr = proc.communicate(timeout=120)  # its pipes close when the workers have ended too
    assert time.monotonic() - killed < 30, stderr  # a step and a save, on a busy 2-core machine
    assert not [pid for pid in running if alive(pid)]
    for text in ("Traceback", "BrokenPipeError", "leaked"):
        assert text not in stderr, stderr
    assert not list(out.glob("runs/*/*/.lock"))  # every job let go of its folder at once
    again = odenets(*ARGS, "--jobs", 2, "--out", out)
    assert again.returncode == 0, again.stderr
    assert study(out) == one_by_one


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers in /proc")
def test_a_worker_killed_ends_the_study_with_one_message(tmp_path):
    out = tmp_path / "worker-killed"
    argv = [*ARGS, "--seeds", 1, "--epochs", 5, "--jobs", 2, "--out", out]  # two runs, both running at the kill
    proc = odenets(*argv, wait=False)
    killed = started_training(proc, out)[0]
    os.kill(killed, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr and "error: the process of run" in stderr
    assert "ended with exit status -9 (killed by SIGKILL) before it reported" in stderr
    assert "rerun the same command to go on" in stderr
    locks = [json.loads(path.read_text())["pid"] for path in out.glob("runs/*/*/.lock")]
    assert locks in ([], [killed]) and not list(out.glob("runs/*/*/result.json"))  # a killed process's lock is stale
    again = odenets(*argv)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("runs/*/*/result.json"))) == 2


def fails(cfg, progress):
    """A run that fails with an error of no kind odenets knows (for the test below)."""
    raise ZeroDivisionError(f"no data in {cfg.out}")


def test_an_error_in_a_worker_names_the_run_and_the_error(tmp_path):
    with pytest.raises(RunFailed) as caught:
        jobs.run(fails, [Config(out=str(tmp_path / "a"))], 2)
    assert str(caught.value).startswith(f"run {tmp_path / 'a'} failed with ZeroDivisionError: no data in ")
