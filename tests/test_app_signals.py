"""SIGTERM: the run finishes its step, saves, exits non-zero and says how to resume;
the printed command resumes it."""
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from odenets.app.run import checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigterm_saves_and_prints_a_working_resume_command(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "odenets", "train", "--model", "resnet8", "--epochs", "6", "--batch-size", "16",
            "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM" in stderr and "Traceback" not in stderr
    state = checkpoint.load(out / "checkpoint.pt")  # intact, and not the end of the run
    assert 1 <= state["epoch"] < 6
    assert state["step"] == state["epoch"] * 85 + state["batch"]  # ceil(1347 / 16) steps an epoch
    command = stderr.split("resume with:")[1].strip().splitlines()[0]
    assert f"--resume {out / 'checkpoint.pt'}" in command
    resumed = subprocess.run(shlex.split(command), capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    final = checkpoint.load(out / "checkpoint.pt")
    assert final["epoch"] == 6 and [r["epoch"] for r in final["history"]] == [1, 2, 3, 4, 5, 6]


def test_a_second_signal_stops_at_once_unless_it_echoes_the_first():
    from odenets.app.run.signals import stop_requests

    before = signal.getsignal(signal.SIGTERM)
    with stop_requests(announce=False) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.name == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)  # within a second: the same request (torchrun + terminal)
        time.sleep(1.1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here at the latest
    assert signal.getsignal(signal.SIGTERM) is before
