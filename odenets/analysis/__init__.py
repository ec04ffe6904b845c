"""Numerical analysis of networks read as schemes, from what each scheme declares (its
characteristic polynomial, its trained coefficients), never its name: the modified
equation of any step and of networks with trained coefficients (LM's k_n), regions of
absolute stability, the eigenvalues of a trained network's steps against them, and
empirical orders of convergence.

Each function returns data (tensors, dataclasses); the ``plot_*`` functions draw that data
as a matplotlib Figure (Agg, imported only when drawing) and save it as PNG.
"""
from .convergence import ConvergenceResult, ODEProblem, convergence, fit_order, logistic, plot_convergence
from .k_history import k_by_step, plot_k_history
from .modified_equation import (READINGS, ModifiedEquation, format_table, learned_nets, modified_equation,
                                plot_learned_k)
from .modified_multistep import SecondOrderEquation, modified_multistep
from .spectra import StepSpectrum, format_spectra, plot_spectra, step_spectra
from .stability import (Characteristic, StabilityRegion, characteristic, learned_regions, plot_stability,
                        real_interval, stability_region, stable, zero_stable)

__all__ = [
    "Characteristic", "ConvergenceResult", "ModifiedEquation", "ODEProblem", "READINGS", "SecondOrderEquation",
    "StabilityRegion", "StepSpectrum", "characteristic", "convergence", "fit_order", "format_spectra",
    "format_table", "k_by_step", "learned_nets", "learned_regions", "logistic", "modified_equation",
    "modified_multistep", "plot_convergence", "plot_k_history", "plot_learned_k", "plot_spectra", "plot_stability",
    "real_interval", "stability_region", "stable", "step_spectra", "zero_stable",
]
