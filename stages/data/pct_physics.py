"""Proton transport physics for the proton-CT (digital tracking calorimeter) simulation: Bethe
stopping power, CSDA range tables and the range-table energy step T_out = R⁻¹(R(T_in) − s),
Bohr straggling in thick layers and Landau/Vavilov in thin ones, Highland multiple scattering,
nuclear removal.  Vectorised over protons (numpy)."""
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
# polyimide: the flex cables' insulator and spacers (also stands in for the 5 µm glue layers)
KAPTON = Material("kapton", 0.512640, 79.6, 1.42, 40.58, 80.3)
EULER = 0.5772156649


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
    x = np.asarray(thickness_cm) * material.density / material.x0
    return np.sqrt(highland_variance(kinetic, x))


def highland_variance(kinetic: np.ndarray, radiation_lengths: np.ndarray) -> np.ndarray:
    """θ0² (rad²) after ``radiation_lengths`` X0 of material at kinetic energy ``kinetic``."""
    b2, _ = beta_gamma(kinetic)
    k = np.asarray(kinetic, dtype=np.float64)
    p = np.sqrt(np.maximum(k**2 + 2 * k * M_P, 1e-12))
    x = np.maximum(np.asarray(radiation_lengths, dtype=np.float64), 1e-12)
    return (13.6 / (np.sqrt(b2) * p)) ** 2 * x * (1 + 0.038 * np.log(x / b2)) ** 2


BOHR_K = K_BETHE * M_E      # MeV² cm²/g per unit Z/A: Bohr's energy-straggling variance coefficient


@dataclass
class Protons:
    """The state of a bunch of protons between slabs (arrays of one length): kinetic energy (MeV),
    transverse position (cm) and slopes dx/dz, dy/dz, the radiation lengths crossed so far;
    ``alive`` is False once a proton stopped or was removed by a nuclear interaction."""
    kinetic: np.ndarray
    x: np.ndarray
    y: np.ndarray
    slope_x: np.ndarray
    slope_y: np.ndarray
    alive: np.ndarray
    radiation_lengths: np.ndarray | None = None

    def __post_init__(self):
        if self.radiation_lengths is None:
            self.radiation_lengths = np.zeros(self.kinetic.size)

    @classmethod
    def beam(cls, n: int, kinetic: float, spot_sigma_cm: float, rng: np.random.Generator) -> "Protons":
        """A pencil beam along z: Gaussian spot of width ``spot_sigma_cm``, no divergence."""
        return cls(np.full(n, float(kinetic)), rng.normal(0, spot_sigma_cm, n), rng.normal(0, spot_sigma_cm, n),
                   np.zeros(n), np.zeros(n), np.ones(n, dtype=bool))


def bohr_sigma(kinetic: np.ndarray, thickness_cm: float, material: Material) -> np.ndarray:
    """Width (MeV) of the energy-loss distribution after a thick layer (Bohr, with the
    relativistic factor (1 − β²/2) / (1 − β²))."""
    b2, _ = beta_gamma(kinetic)
    return np.sqrt(BOHR_K * material.z_over_a * material.density * thickness_cm * (1 - b2 / 2) / (1 - b2))


def landau_parameters(kinetic: np.ndarray, thickness_cm: float, material: Material) -> tuple[np.ndarray, np.ndarray]:
    """Landau's scale ξ = (K/2)(Z/A) ρx / β² (MeV) and Vavilov's κ = ξ / T_max of a thin layer."""
    b2, g = beta_gamma(kinetic)
    xi = 0.5 * K_BETHE * material.z_over_a * material.density * thickness_cm / b2
    t_max = 2 * M_E * b2 * g**2 / (1 + 2 * g * M_E / M_P + (M_E / M_P) ** 2)
    return xi, xi / t_max


class _TruncatedLandau:
    """Mean of the standard Landau variate λ restricted to λ ≤ L, tabulated over L, and its inverse."""

    def __init__(self):
        from scipy.stats import landau
        grid = np.concatenate([np.linspace(-3.5, 0.0, 200), np.geomspace(1e-3, 1e6, 4000)])
        pdf = landau.pdf(grid)
        mass = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
        first = np.concatenate([[0.0], np.cumsum(0.5 * (grid[1:] * pdf[1:] + grid[:-1] * pdf[:-1]) * np.diff(grid))])
        self.limit, self.mean = grid[50:], (first[50:] + grid[0] * landau.cdf(grid[0])) / mass[50:]

    def limit_for_mean(self, mean: np.ndarray) -> np.ndarray:
        """The cut L whose truncated mean is ``mean`` (the mean grows with L)."""
        return np.interp(mean, self.mean, self.limit)


_TRUNCATED_LANDAU: _TruncatedLandau | None = None


def thin_layer_loss(kinetic: np.ndarray, thickness_cm: float, material: Material,
                    rng: np.random.Generator) -> np.ndarray:
    """Energy lost (MeV) in a thin layer (a 50 µm sensor), with the mean of the range table.
    Where κ < 1 (fast protons): Landau's distribution of scale ξ with its tail cut (one collision
    cannot transfer more than T_max, which is what keeps Vavilov's distribution finite) where the
    truncated mean of λ is Landau's λ̄ = −(1 − γ_E) − β² − ln κ, so the most probable loss sits
    ξ (λ̄ + 0.2228) below the range table's mean; where κ ≥ 1 (near the Bragg peak) Vavilov's
    distribution is close to Gaussian: Bohr's width."""
    global _TRUNCATED_LANDAU
    from scipy.stats import landau
    t_in = np.asarray(kinetic, dtype=np.float64)
    mean = t_in - material.range_table.step(t_in, thickness_cm)
    xi, kappa = landau_parameters(np.maximum(t_in, T_LOW), thickness_cm, material)
    b2, _ = beta_gamma(np.maximum(t_in, T_LOW))
    lam_bar = -(1 - EULER) - b2 - np.log(kappa)
    if _TRUNCATED_LANDAU is None:
        _TRUNCATED_LANDAU = _TruncatedLandau()
    limit = _TRUNCATED_LANDAU.limit_for_mean(lam_bar)
    lam = landau.ppf(rng.random(t_in.size) * landau.cdf(limit))
    landau_loss = mean + xi * (lam - lam_bar)
    gauss_loss = mean + bohr_sigma(np.maximum(t_in, T_LOW), thickness_cm, material) * rng.standard_normal(t_in.size)
    return np.clip(np.where(kappa < 1.0, landau_loss, gauss_loss), 0.0, t_in)


def transport_slab(p: Protons, material: Material, thickness_cm: float, rng: np.random.Generator,
                   thin: bool = False, nuclear: bool = True) -> np.ndarray:
    """Move the live protons of ``p`` through a slab (in place): energy loss from the range table
    with Bohr straggling (``thin``: Landau/Vavilov, ``thin_layer_loss``), Highland multiple
    scattering with the correlated offset and angle of each projection (PDG), nuclear removal with
    the interaction length (unless ``nuclear`` is False).  Returns the energy each proton
    deposited (MeV; 0 for protons that were not alive)."""
    on = np.flatnonzero(p.alive)
    t_in = p.kinetic[on]
    if thin:
        t_out = t_in - thin_layer_loss(t_in, thickness_cm, material, rng)
    else:
        t_mean = material.range_table.step(t_in, thickness_cm)
        sigma = np.where(t_mean > 0, bohr_sigma(np.maximum(t_mean, T_LOW), thickness_cm, material), 0.0)
        t_out = np.clip(t_mean + sigma * rng.standard_normal(on.size), 0.0, t_in)
        t_out[t_mean <= 0] = 0.0
    # Highland is not additive over thin slabs (its log term): the slab adds the growth of θ0²
    # over the radiation lengths crossed so far, at the slab's mean energy
    t_mid = 0.5 * (t_in + np.maximum(t_out, T_LOW))
    before = p.radiation_lengths[on]
    after = before + material.density * thickness_cm / material.x0
    theta0 = np.sqrt(np.maximum(highland_variance(t_mid, after) - highland_variance(t_mid, before), 0.0))
    p.radiation_lengths[on] = after
    for pos, slope in ((p.x, p.slope_x), (p.y, p.slope_y)):
        z1, z2 = rng.standard_normal((2, on.size))
        pos[on] += thickness_cm * slope[on] + thickness_cm * theta0 * (z1 / np.sqrt(12) + z2 / 2)
        slope[on] += theta0 * z2
    removed = rng.random(on.size) < -np.expm1(-material.density * thickness_cm / material.interaction_length)
    removed &= nuclear
    deposit = np.zeros(p.kinetic.size)
    deposit[on] = t_in - t_out
    p.kinetic[on] = t_out
    p.alive[on] = (t_out > 0) & ~removed
    return deposit
