"""The benchmark scripts run (on tiny settings), so their figures can be measured again."""
from __future__ import annotations

import re
import runpy
from pathlib import Path

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
