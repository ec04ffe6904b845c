"""Numerical analysis of networks read as schemes: the modified equation of LM networks
and their learned k_n, that of any linear multistep step (momentum's among them),
regions of absolute stability, the eigenvalues of a trained network's steps against
them, and empirical orders of convergence.

Each function returns data (tensors, dataclasses); the ``plot_*`` functions draw that data
as a matplotlib Figure (Agg, imported only when drawing) and save it as PNG.
"""
from .convergence import ConvergenceResult, ODEProblem, convergence, fit_order, logistic, plot_convergence
from .k_history import k_by_step, plot_k_history
from .modified_equation import READINGS, ModifiedEquation, format_table, lm_nets, modified_equation, plot_learned_k
from .modified_multistep import SecondOrderEquation, modified_multistep
from .spectra import StepSpectrum, format_spectra, plot_spectra, step_spectra
from .stability import (Characteristic, StabilityRegion, characteristic, learned_regions, plot_stability,
                        real_interval, stability_region, stable, zero_stable)

__all__ = [
    "Characteristic", "ConvergenceResult", "ModifiedEquation", "ODEProblem", "READINGS", "SecondOrderEquation",
    "StabilityRegion", "StepSpectrum", "characteristic", "convergence", "fit_order", "format_spectra",
    "format_table", "k_by_step", "learned_regions", "lm_nets", "logistic", "modified_equation", "modified_multistep",
    "plot_convergence", "plot_k_history", "plot_learned_k", "plot_spectra", "plot_stability", "real_interval",
    "stability_region", "stable", "step_spectra", "zero_stable",
]
