"""A run folder belongs to one live process: a second writer is refused naming the
folder and the other process; a lock left by a killed process is taken over; the
temporary files of a killed write are cleared when the next run starts."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from odenets.app.commands import cli
from odenets.app.commands.train import fit
from odenets.app.errors import UsageError
from odenets.app.run import lock
from odenets.app.settings.config import Config

HOLD = "import sys, time\nfrom odenets.app.run import lock\nwith lock.hold(sys.argv[1]):\n    print('held', flush=True)\n" \
       "    time.sleep(120)\n"


def holder(folder):
    """Another process holding ``folder``'s lock (until killed)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def other(tmp_path):
    procs = []
    yield lambda folder: procs.append(holder(folder)) or procs[-1]
    for p in procs:
        p.kill()
        p.wait()


def odenets(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_a_second_writer_is_refused_naming_the_folder_and_the_other_process(tmp_path, capsys, other):
    out = tmp_path / "run"
    proc = other(out)
    code, err = odenets(capsys, "train", "--model", "resnet8", "--epochs", 1, "--out", out)
    assert code == 2
    assert f"{out} is in use by process {proc.pid}" in err
    assert sorted(p.name for p in out.iterdir()) == [lock.NAME]  # nothing of ours written
    assert json.loads((out / lock.NAME).read_text())["pid"] == proc.pid


def test_ablate_takes_each_run_folder(tmp_path, capsys, other):
    proc = other(tmp_path / "runs" / "euler" / "seed0")
    code, err = odenets(capsys, "ablate", "--jobs", 1, "--model", "resnet8", "--epochs", 1, "--solvers", "euler", "--seeds", 1,
                        "--out", tmp_path, "--quiet")
    assert code == 2 and f"in use by process {proc.pid}" in err


def test_a_lock_left_by_a_killed_process_is_stale(tmp_path, other):
    proc = other(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((tmp_path / lock.NAME).read_text())["pid"] == proc.pid  # left behind
    assert not lock.alive(proc.pid)
    with lock.hold(tmp_path):
        assert json.loads((tmp_path / lock.NAME).read_text())["pid"] == os.getpid()
        with lock.hold(tmp_path):  # again, in the same process: still ours
            pass
        assert (tmp_path / lock.NAME).exists()
    assert not (tmp_path / lock.NAME).exists()  # released


def test_training_holds_the_folder_until_it_ends(tmp_path):
    seen = []

    def try_from_another_process(model, epoch, step):
        if step == 1:
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
            seen.append(subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], capture_output=True, text=True,
                                       env=env, timeout=60))

    fit(Config(model="resnet8", epochs=1, batch_size=256, out=str(tmp_path), quiet=True),
        on_step=try_from_another_process)
    assert seen[0].returncode != 0 and f"{tmp_path} is in use by process {os.getpid()}" in seen[0].stderr
    assert not (tmp_path / lock.NAME).exists() and (tmp_path / "result.json").exists()


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    code, err = odenets(capsys, "train", "--data", "cifar10", "--data-dir", tmp_path / "nothing", "--out", out)
    assert code == 2 and "no CIFAR10 found" in err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("where, expect", [("file", "is a file, not a folder"),
                                           ("under", "lies under {file}, which is a file"),
                                           ("sys", "cannot create the folder")])
def test_an_out_that_cannot_be_a_folder(tmp_path, capsys, where, expect):
    file = tmp_path / "file"
    file.write_text("x")
    out = {"file": file, "under": file / "run", "sys": Path("/sys/odenets-test/run")}[where]
    code, err = odenets(capsys, "train", "--model", "resnet8", "--epochs", 1, "--out", out)
    assert code == 2 and expect.format(file=file) in err and str(out) in err
    assert file.read_text() == "x"


def test_temporary_files_of_a_killed_write_are_removed_when_the_next_run_starts(tmp_path):
    left = [tmp_path / ".checkpoint.pt.4242.0123abcd.tmp", tmp_path / ".metrics.csv.17.deadbeef.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".checkpoint.pt.x.0123abcd.tmp"]
    for p in left + kept:
        p.write_bytes(b"partial")
    fit(Config(model="resnet8", epochs=1, batch_size=256, out=str(tmp_path), quiet=True))
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)


def test_a_folder_held_by_another_process_raises_a_usage_error(tmp_path, other):
    proc = other(tmp_path)
    with pytest.raises(UsageError, match=f"in use by process {proc.pid}"):
        with lock.hold(tmp_path):
            pass
