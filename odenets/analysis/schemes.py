"""The schemes the analyses take by name, found from what each scheme declares."""
from __future__ import annotations

import torch

from odenets import solvers


def fixed_step() -> list[str]:
    """The registered fixed-step schemes, those registered since import included."""
    return [name for name in solvers.available() if not solvers.is_adaptive(name)]


def analysable() -> list[str]:
    """The registered schemes that, built with their default options, are deterministic,
    take one function per step and declare a characteristic polynomial: each reduces to
    one recurrence for u' = lambda u (its stability) and runs on one shared f (its
    convergence). A scheme registered since import is among them when it declares so."""
    names = []
    for name in fixed_step():
        try:
            scheme = solvers.get(name)
        except ValueError:  # needs options to be built (euler_maruyama's diffusion)
            continue
        if (scheme.deterministic is scheme and scheme.functions == 1
                and scheme.characteristic(**scheme.init_params(1)) is not None):
            names.append(name)
    return names


def resolve(scheme, keywords: dict, what: str) -> tuple[object, dict, dict]:
    """(scheme, options, params) from what an analysis was given: a scheme name (built
    with the ``keywords`` its factory takes), a Scheme (its eval-mode step), or data that
    declares a characteristic polynomial (ButcherTableau, MultistepCoefficients). The other
    keywords are the step's trained coefficients, ``params``, as float64 tensors; each
    trained coefficient must be given. ``what`` names the analysis in errors."""
    options = {}
    if isinstance(scheme, str):
        if solvers.is_adaptive(scheme):
            raise ValueError(f"{scheme!r} is an adaptive solver: its step, hence its {what}, depends on the error "
                             f"control; analysable: {', '.join(analysable())} or a tableau/coefficients")
        options = {key: v for key, v in keywords.items() if solvers.takes(scheme, key)}
        scheme = solvers.get(scheme, **options)
    if not callable(getattr(scheme, "characteristic", None)):
        raise TypeError(f"expected a scheme name, a Scheme (a linear multistep or Runge–Kutta one, or any declaring "
                        f"its characteristic polynomial), a ButcherTableau or MultistepCoefficients, "
                        f"got {type(scheme).__name__}")
    scheme = getattr(scheme, "deterministic", scheme)
    name, trained = getattr(scheme, "name", type(scheme).__name__), getattr(scheme, "trained", ())
    params = {key: v for key, v in keywords.items() if key not in options}
    unknown = [key for key in params if key not in trained]
    if unknown:
        has = f"its trained coefficients are {', '.join(trained)}" if trained else "it takes none"
        raise ValueError(f"{name!r} has no step parameters {', '.join(unknown)}: {has}")
    missing = [key for key in trained if key not in params]
    if missing:
        raise ValueError(f"the {what} of {name!r} depends on its trained coefficient(s): pass "
                         + ", ".join(f"{key} (e.g. {key}=-0.5)" for key in missing))
    return scheme, options, {key: v.detach().to("cpu", torch.float64) if isinstance(v, torch.Tensor)
                             else torch.tensor(v, dtype=torch.float64) for key, v in params.items()}
