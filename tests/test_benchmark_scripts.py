"""The benchmark scripts run (on tiny settings), so their figures can be measured again."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_float32_prints_each_scheme_against_euler_and_the_adaptive_evaluations(capsys) -> None:
    main = runpy.run_path(str(BENCHMARKS / "bench_float32.py"))["main"]
    main(["--schemes", "euler,rk4,dopri5", "--depths", "3", "--dts", "1", "--rtol", "1e-4", "--atol", "1e-6"])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {"euler", "rk4", "dopri5"}
    euler = rows["euler"].split()
    assert euler[5:7] == ["1.00", "1.00"]  # Euler over itself
    assert 0 < float(euler[3]) < 1e-5 and 0 < float(euler[4]) < 1e-5  # float32 round-off, not zero
    calls = re.search(r"f evaluated (\d+) / (\d+) times", rows["dopri5"])
    assert calls and int(calls[1]) >= 6 and int(calls[2]) >= 6  # dopri5: six evaluations a step at least
    assert "f evaluated" not in rows["rk4"]


def test_bench_reversible_times_each_contender_beside_a_recompute_floor_that_is_the_same_network(capsys) -> None:
    bench = runpy.run_path(str(BENCHMARKS / "bench_reversible.py"))
    bench["main"](["--depths", "2,4", "--gammas", "0.5", "--time-depth", "3", "--repeats", "1", "--batch", "4",
                   "--width", "8"])
    out = capsys.readouterr().out
    timed = out.split("training step")[1]
    for solver in ("revnet", "momentum 0.9"):
        assert re.search(rf"{solver}\s+recompute floor\s+[\d.]+\s+[\d.]+", timed)
    assert re.search(r"momentum 0.5\s+memory_efficient(\s+[\d.]+){3}\s+1\.000", out)  # log2(1/gamma) beside
    # the floor's check compares it with the network it stands for: another gamma is caught
    x = torch.randn(4, 8)
    for solver, gamma in (("revnet", 0.0), ("momentum", 0.9)):
        nets = bench["contenders"](solver, 3, gamma, 8)
        functions = [s.functions for s in nets["plain"].layers]
        bench["check_floor"](nets["plain"], bench["RecomputeFloor"](solver, functions, gamma), x)
    with pytest.raises(AssertionError, match="recompute floor"):
        bench["check_floor"](nets["plain"], bench["RecomputeFloor"]("momentum", functions, 0.8), x)
