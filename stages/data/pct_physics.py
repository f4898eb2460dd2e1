"""Proton transport physics for the proton-CT (digital tracking calorimeter) simulation: Bethe
stopping power, CSDA range tables and the range-table energy step T_out = R⁻¹(R(T_in) − s), and
Highland multiple scattering.  Vectorised over protons (numpy)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

K_BETHE = 0.307075          # 4π N_A r_e² m_e c², MeV cm² / mol
M_E = 0.51099895            # electron mass, MeV
M_P = 938.27208816          # proton mass, MeV
T_LOW = 1.0                 # MeV: below it the Bethe formula fails; S ∝ T^-0.77 (Bragg–Kleeman) instead
BRAGG_KLEEMAN = 1.77        # R ∝ T^p for slow protons


@dataclass(frozen=True)
class Material:
    """What transport needs of a material (PDG values): Z/A, mean excitation energy I, density,
    radiation length X0 and nuclear interaction length λ_I (both in g/cm²)."""
    name: str
    z_over_a: float
    excitation_ev: float
    density: float              # g/cm³
    x0: float                   # g/cm²
    interaction_length: float   # g/cm²

    @cached_property
    def range_table(self) -> "RangeTable":
        return RangeTable(self)


WATER = Material("water", 0.555087, 75.0, 1.0, 36.08, 83.3)
ALUMINIUM = Material("aluminium", 0.481807, 166.0, 2.699, 24.01, 107.2)
SILICON = Material("silicon", 0.498477, 173.0, 2.329, 21.82, 108.4)
CARBON = Material("carbon", 0.499536, 78.0, 2.0, 42.70, 85.8)
AIR = Material("air", 0.499190, 85.7, 1.20479e-3, 36.62, 90.1)


def beta_gamma(kinetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """β² and γ of protons of kinetic energy ``kinetic`` (MeV)."""
    gamma = 1.0 + np.asarray(kinetic, dtype=np.float64) / M_P
    return 1.0 - 1.0 / gamma**2, gamma


def bethe_stopping_power(kinetic: np.ndarray, material: Material) -> np.ndarray:
    """Mass stopping power −dT/d(ρx) in MeV cm²/g (Bethe, no shell or density corrections: below
    0.2% on the CSDA range in water from 50 to 230 MeV)."""
    b2, g = beta_gamma(kinetic)
    t_max = 2 * M_E * b2 * g**2 / (1 + 2 * g * M_E / M_P + (M_E / M_P) ** 2)
    i = material.excitation_ev * 1e-6
    return K_BETHE * material.z_over_a / b2 * (0.5 * np.log(2 * M_E * b2 * g**2 * t_max / i**2) - b2)


class RangeTable:
    """CSDA range R(T) in g/cm² on a log grid of kinetic energies, and its inverse."""

    def __init__(self, material: Material, t_max: float = 400.0, points: int = 4000):
        self.material = material
        t = np.geomspace(T_LOW, t_max, points)
        inv = 1.0 / bethe_stopping_power(t, material)
        # below T_LOW: S(T) = S(T_LOW) (T / T_LOW)^(1 - p), so R(T_LOW) = T_LOW / (p S(T_LOW))
        r_low = T_LOW * inv[0] / BRAGG_KLEEMAN
        self.energy = t
        self.range = r_low + np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(t))])

    def csda_range(self, kinetic: np.ndarray) -> np.ndarray:
        """R(T) in g/cm² (0 for a stopped proton)."""
        k = np.maximum(np.asarray(kinetic, dtype=np.float64), 0.0)
        low = self.range[0] * (k / T_LOW) ** BRAGG_KLEEMAN
        return np.where(k < T_LOW, low, np.interp(k, self.energy, self.range))

    def kinetic_energy(self, csda_range: np.ndarray) -> np.ndarray:
        """R⁻¹: the kinetic energy (MeV) with CSDA range ``csda_range`` g/cm² (0 when ≤ 0)."""
        r = np.maximum(np.asarray(csda_range, dtype=np.float64), 0.0)
        low = T_LOW * (r / self.range[0]) ** (1.0 / BRAGG_KLEEMAN)
        return np.where(r < self.range[0], low, np.interp(r, self.range, self.energy))

    def step(self, kinetic: np.ndarray, thickness_cm: np.ndarray) -> np.ndarray:
        """Kinetic energy after ``thickness_cm`` of the material: T_out = R⁻¹(R(T_in) − ρ s); 0 when
        the proton stops inside."""
        return self.kinetic_energy(self.csda_range(kinetic) - self.material.density * np.asarray(thickness_cm))


def highland_theta0(kinetic: np.ndarray, thickness_cm: np.ndarray, material: Material) -> np.ndarray:
    """Width (rad) of the projected multiple-scattering angle after ``thickness_cm`` (Highland, PDG:
    13.6 MeV / (β c p) √(x/X0) (1 + 0.038 ln(x / (X0 β²))), for a proton of charge 1)."""
    b2, g = beta_gamma(kinetic)
    p = np.sqrt(np.maximum(np.asarray(kinetic) ** 2 + 2 * np.asarray(kinetic) * M_P, 1e-12))
    x = np.maximum(np.asarray(thickness_cm) * material.density / material.x0, 1e-12)
    return 13.6 / (np.sqrt(b2) * p) * np.sqrt(x) * (1 + 0.038 * np.log(x / b2))
