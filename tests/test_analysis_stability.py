"""Regions of absolute stability against known facts (Hairer & Wanner, Solving ODEs II, §IV.2, §V.1)."""
import math

import numpy as np
import pytest
import torch
from odenets.solvers import ButcherTableau, MultistepCoefficients

from odenets.analysis import (
    characteristic,
    learned_regions,
    modified_equation,
    plot_stability,
    real_interval,
    stability_region,
    stable,
    zero_stable,
)


def away_from(distance: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Grid points not within eps of a region's boundary."""
    return distance.abs() > eps


def test_euler_is_the_disc_around_minus_one():
    region = stability_region("euler", re=(-3, 1), im=(-2, 2), resolution=201)
    modulus = (1 + region.z).abs()
    want = modulus <= 1
    mask = away_from(modulus - 1)
    assert mask.sum() > 0.95 * mask.numel()
    assert torch.equal(region.stable[mask], want[mask])
    assert region.area == pytest.approx(math.pi, rel=0.01)  # the unit disc; the grid's cells are 0.02 wide
    inside = torch.tensor([-1 + 0j, -0.5 + 0.5j, -1.9 + 0j, -1 + 0.99j, -0.01 + 0j])
    outside = torch.tensor([0.01 + 0j, -2.01 + 0j, -1 + 1.01j, 0.5j, -0.2 + 0.7j])
    assert stable("euler", inside).all()
    assert not stable("euler", outside).any()


def test_rk_amplification_is_computed_from_the_tableau():
    # every 4-stage explicit RK of order 4 has R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24; the 3/8 rule is one
    three_eighths = ButcherTableau("rk38", 4, a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
                                  b=(1 / 8, 3 / 8, 3 / 8, 1 / 8), c=(0.0, 1 / 3, 2 / 3, 1.0))
    taylor = [1 / math.factorial(j) for j in range(5)]
    for scheme in ("rk4", three_eighths):
        c = characteristic(scheme).coeffs
        assert c.shape == (2, 5)
        assert torch.allclose(-c[0], torch.tensor(taylor, dtype=torch.float64), atol=1e-14)
    z = torch.tensor([-1.3 + 0.4j, 0.2 - 2j])
    R = sum(t * z**j for j, t in enumerate(taylor))
    assert torch.allclose(characteristic("rk4").roots(z)[..., 0], R.to(torch.complex128))


def test_rk4_reaches_minus_2_785():
    lo, hi = real_interval("rk4")
    assert hi == 0.0
    assert abs(lo - (-2.785)) < 1e-2
    assert lo == pytest.approx(-2.78529, abs=1e-4)


@pytest.mark.parametrize("name, lo", [("heun", -2.0), ("midpoint", -2.0), ("euler", -2.0), ("rk3", -2.5127),
                                      ("ab2", -1.0), ("ab3", -6 / 11), ("ab4", -0.3)])
def test_real_stability_intervals(name, lo):
    got, hi = real_interval(name)
    assert hi == 0.0
    assert got == pytest.approx(lo, abs=1e-4)


def test_ab2_interval_is_minus_one_to_zero():
    lo, _ = real_interval("ab2")
    assert lo == pytest.approx(-1.0, abs=1e-8)
    assert stable("ab2", torch.tensor([-0.99, -0.5, -1e-3])).all()
    assert not stable("ab2", torch.tensor([-1.01, -1.5, 1e-3])).any()


def test_lm_at_zero_and_polynet_r1_are_euler():
    euler = stability_region("euler", resolution=161)
    mask = away_from((1 + euler.z).abs() - 1)
    for other in (stability_region("lm", k=0.0, resolution=161), stability_region("polynet", truncation=1,
                                                                                   resolution=161)):
        assert torch.equal(other.stable[mask], euler.stable[mask])


@pytest.mark.parametrize("k", [-0.9, -0.5, -0.1, 0.3, 0.7])
def test_lm_real_interval_is_minus_two_one_minus_k(k):
    # on the real axis a real root of zeta^2 - (1 - k + z) zeta - k leaves the disc through -1 at
    # z = -2(1 - k); a complex pair has |zeta|^2 = |k| < 1
    lo, _ = real_interval("lm", k=k)
    assert lo == pytest.approx(-2 * (1 - k), abs=1e-6)


def test_lm_zero_stability_follows_the_root_minus_k():
    assert zero_stable("lm", k=-0.99) and zero_stable("lm", k=1.0)
    assert not zero_stable("lm", k=-1.0)  # double root zeta = 1
    for k in (1.2, -1.3):
        assert not zero_stable("lm", k=k)
        assert real_interval("lm", k=k) is None
        assert not stability_region("lm", k=k, resolution=81).stable.any()


def test_user_multistep_leapfrog_is_stable_only_on_the_imaginary_segment():
    leapfrog = MultistepCoefficients("leapfrog", 2, alpha=(0.0, 1.0), beta=(2.0, 0.0))
    assert stable(leapfrog, torch.tensor([0.5j, -0.9j, 0.0])).all()
    assert not stable(leapfrog, torch.tensor([1.1j, -0.05 + 0.5j, 0.05 + 0.5j, -0.1])).any()
    assert real_interval(leapfrog) is None


def test_roots_of_higher_degree_against_numpy():
    char = characteristic("ab4")
    rng = np.random.default_rng(0)
    zs = rng.normal(size=5) + 1j * rng.normal(size=5)
    got = char.roots(torch.from_numpy(zs)).numpy()
    for z, roots in zip(zs, got):
        # rho(zeta) - z sigma(zeta) for AB4, highest power first
        poly = np.array([1.0, -1.0, 0, 0, 0]) - z * np.array([0, 55, -59, 37, -9]) / 24
        assert np.allclose(np.sort_complex(roots), np.sort_complex(np.roots(poly)), atol=1e-10)


def test_per_channel_k_region_is_the_intersection():
    ks = [-0.6, -0.1, 0.4]
    joint = stability_region("lm", k=torch.tensor(ks), resolution=121)
    each = [stability_region("lm", k=k, resolution=121).stable for k in ks]
    assert torch.equal(joint.stable, each[0] & each[1] & each[2])
    assert joint.stable.any()


def test_learned_regions_and_figure(tmp_path):
    from torch import nn

    from odenets import ODENet

    net = ODENet(nn.Identity(), "lm", steps=4, k_init=-0.5)
    regions = learned_regions(modified_equation(net), resolution=81)
    assert sorted(regions) == [1, 2, 3]  # step 0 is forward Euler, no k
    path = tmp_path / "fig" / "regions.png"
    fig = plot_stability([stability_region(n, resolution=81) for n in ("euler", "rk4")], path, learned=regions)
    assert len(fig.axes) >= 2
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_stability([stability_region("ab2", resolution=81)], tmp_path / "p.png", panels=True)
    assert (tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="png"):
        plot_stability([stability_region("euler", resolution=21)], tmp_path / "regions.pdf")


def test_eleven_overlaid_regions_are_told_apart():
    """Every scheme's boundary in a colour and dash of its own (after ten colours, dashes)."""
    from matplotlib.contour import ContourSet

    from odenets.analysis.schemes import analysable

    names = analysable()
    assert len(names) > 10  # more than the ten default colours
    regions = [stability_region(n, resolution=41, **({"k": -0.5} if n == "lm" else {})) for n in names]
    fig = plot_stability(regions)
    assert [h.get_label() for h in fig.axes[0].get_legend().legend_handles] == [r.name for r in regions]
    lines = [c for c in fig.axes[0].collections if isinstance(c, ContourSet) and not c.filled]
    assert len(lines) == len(names)  # no region here is the whole plane or empty
    assert len({(tuple(c.get_edgecolor()[0]), str(c.get_linestyle())) for c in lines}) == len(names)


def test_bad_schemes_get_clear_errors():
    with pytest.raises(ValueError, match="unknown solver"):
        characteristic("nope")
    with pytest.raises(ValueError, match="pass k"):
        characteristic("lm")
    with pytest.raises(ValueError, match="no linear stability analysis"):
        characteristic("revnet")
    with pytest.raises(ValueError, match="takes none"):
        characteristic("rk4", k=-0.5)
    with pytest.raises(ValueError, match="adaptive"):
        characteristic("dopri5")
    with pytest.raises(ValueError, match="range"):
        stability_region("euler", re=(1, -1))


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, odenets.analysis; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'zoo') or "
            "m.startswith('odenets.app')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
