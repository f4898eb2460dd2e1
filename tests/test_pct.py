"""Proton-CT transport physics: CSDA ranges against NIST PSTAR, the range-table energy step."""
from __future__ import annotations

import numpy as np
import pytest

from trkx.stages.data.pct_physics import ALUMINIUM, WATER, bethe_stopping_power, highland_theta0

# NIST PSTAR CSDA ranges of protons in liquid water, g/cm²
PSTAR_WATER = {50.0: 2.227, 100.0: 7.718, 150.0: 15.77, 200.0: 25.96, 230.0: 32.95}


@pytest.mark.parametrize("energy", sorted(PSTAR_WATER))
def test_csda_range_in_water_is_within_one_percent_of_pstar(energy):
    assert float(WATER.range_table.csda_range(energy)) == pytest.approx(PSTAR_WATER[energy], rel=0.01)


def test_range_table_step_slows_protons_down_and_stops_them_at_their_range():
    table = WATER.range_table
    t0 = np.array([230.0, 150.0, 50.0])
    ranges_cm = table.csda_range(t0) / WATER.density
    # 1,000 steps of a thousandth of the range give the energy one step gives (the table is exact)
    t = t0.copy()
    for _ in range(999):
        t = table.step(t, ranges_cm / 1000)
    assert t == pytest.approx(table.step(t0, ranges_cm * 0.999), rel=1e-6)
    assert np.all(t > 0) and np.all(t < 5.0)          # slow near the end: the Bragg peak
    assert np.all(table.step(t0, ranges_cm * 1.001) == 0)   # and stopped beyond the range
    # energy lost per step grows as the proton slows (dE/dx rises towards the Bragg peak)
    assert bethe_stopping_power(10.0, WATER) > bethe_stopping_power(100.0, WATER) > bethe_stopping_power(230.0, WATER)
    # the inverse is the inverse, also in the slow-proton extension below 1 MeV
    for k in (0.3, 0.9, 3.0, 120.0):
        assert float(table.kinetic_energy(table.csda_range(k))) == pytest.approx(k, rel=1e-4)


def test_highland_width_scales_with_thickness_and_momentum():
    from trkx.stages.data.pct_physics import beta_gamma
    one, four = highland_theta0(230.0, 1.0, WATER), highland_theta0(230.0, 4.0, WATER)
    b2 = float(beta_gamma(230.0)[0])
    log_term = lambda cm: 1 + 0.038 * np.log(cm * WATER.density / WATER.x0 / b2)  # noqa: E731
    assert four / one == pytest.approx(2 * log_term(4.0) / log_term(1.0), rel=1e-9)   # √x and the log
    assert 0.004 < one < 0.006                  # ~5 mrad for 230 MeV through 1 cm of water
    assert highland_theta0(100.0, 1.0, WATER) > one
    assert highland_theta0(230.0, 1.0, ALUMINIUM) > one    # shorter radiation length in cm


def test_aluminium_absorber_is_about_two_point_one_water_equivalent_centimetres():
    # relative stopping power of aluminium to water ≈ 2.1 at therapy energies (2.699 g/cm³ × ~0.777)
    t_out = ALUMINIUM.range_table.step(200.0, 1.0)
    water_cm = (WATER.range_table.csda_range(200.0) - WATER.range_table.csda_range(t_out)) / WATER.density
    assert 2.05 < float(water_cm) < 2.15


def test_lateral_spread_after_water_follows_highland():
    """230 MeV protons through 10 cm of water: the exit angle and position spreads match the
    Highland width (angle θ0, position θ0 L / √3); the same 10 cm in 1 mm slabs stays within 10%."""
    from trkx.stages.data.pct_physics import Protons, transport_slab
    rng = np.random.default_rng(5)
    one = Protons.beam(40000, 230.0, 0.0, rng)
    transport_slab(one, WATER, 10.0, rng)
    theta0 = highland_theta0(0.5 * (230.0 + one.kinetic[one.alive].mean()), 10.0, WATER)
    assert one.slope_y[one.alive].std() == pytest.approx(theta0, rel=0.02)
    assert one.y[one.alive].std() == pytest.approx(theta0 * 10.0 / np.sqrt(3), rel=0.02)
    thin = Protons.beam(40000, 230.0, 0.0, rng)
    for _ in range(100):
        transport_slab(thin, WATER, 0.1, rng)
    assert thin.y[thin.alive].std() == pytest.approx(theta0 * 10.0 / np.sqrt(3), rel=0.10)
    # about 1% of 230 MeV protons per cm of water undergo a nuclear interaction: ~11% removed in 10 cm
    assert 0.08 < 1 - one.alive.mean() < 0.14
    # the mean residual energy is the range-table step, with Bohr's straggling around it
    mean = float(WATER.range_table.step(230.0, 10.0))
    assert one.kinetic[one.alive].mean() == pytest.approx(mean, rel=2e-3)
    assert 0.5 < one.kinetic[one.alive].std() < 3.0


def test_protons_stop_at_their_range_in_water():
    from trkx.stages.data.pct_physics import Protons, transport_slab
    rng = np.random.default_rng(6)
    p = Protons.beam(5000, 150.0, 0.0, rng)
    depth = np.full(p.kinetic.size, np.nan)
    for i in range(400):                       # 1 mm slabs, 40 cm
        was = p.alive & (p.kinetic > 0)
        transport_slab(p, WATER, 0.1, rng)
        depth[was & (p.kinetic == 0)] = (i + 1) * 0.1
    stopped = depth[np.isfinite(depth)]
    # range straggling ~1.1-1.2% of the range; the mean stopping depth is the CSDA range (15.77 cm)
    assert np.median(stopped) == pytest.approx(PSTAR_WATER[150.0], rel=0.01)
    assert 0.005 < stopped.std() / np.median(stopped) < 0.03
