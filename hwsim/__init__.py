"""snnc.hwsim: vectorised, bit-exact simulator of the fixed-point graph, with activity counts."""
from snnc.hwsim.sim import HwSim, HwSimResult

__all__ = ["HwSim", "HwSimResult"]
