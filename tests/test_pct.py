"""Proton-CT transport physics: CSDA ranges against NIST PSTAR, the range-table energy step."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pathlib import Path
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


# --------------------------------------------------------------------------- thin sensors


def test_thin_sensor_loss_is_landau_at_high_energy_and_keeps_the_mean():
    """230 MeV protons through the 50 µm ALPIDE: the most probable loss sits where Landau puts it
    (ξ (λ_mp − λ̄) below the mean), the mean is the range table's, and the tail is long."""
    from trkx.stages.data.pct_physics import EULER, SILICON, beta_gamma, landau_parameters, thin_layer_loss
    rng = np.random.default_rng(3)
    loss = thin_layer_loss(np.full(200_000, 230.0), 0.005, SILICON, rng)
    mean = float(230.0 - SILICON.range_table.step(230.0, 0.005))
    xi, kappa = (float(v) for v in landau_parameters(230.0, 0.005, SILICON))
    assert kappa < 0.01
    b2 = float(beta_gamma(230.0)[0])
    mpv = mean + xi * (-0.2228 + (1 - EULER) + b2 + np.log(kappa))
    counts, edges = np.histogram(loss, bins=np.linspace(0, 3 * mean, 300))
    assert edges[counts.argmax()] == pytest.approx(mpv, rel=0.05)
    assert loss.mean() == pytest.approx(mean, rel=0.02)     # a heavy tail: the sample mean wanders
    assert np.median(loss) < loss.mean() and np.percentile(loss, 99) > 2.5 * mpv   # Landau's tail
    # near the Bragg peak (κ > 1) the loss is Gaussian around the mean: symmetric
    slow = thin_layer_loss(np.full(50_000, 10.0), 0.005, SILICON, rng)
    assert np.median(slow) == pytest.approx(slow.mean(), rel=0.01)


def test_cluster_size_follows_the_dtc_toolkit_parametrisation():
    from trkx.stages.data.pct import cluster_size
    # 50 µm sensor: 100 keV -> 2 keV/µm -> 4.2267 · 2^0.65 + 0.5 = 7.3 -> 7 pixels
    assert cluster_size(np.array([0.1, 0.0, 1.0])).tolist() == [7, 1, 30]   # 1 MeV: 20 keV/µm -> 30


# --------------------------------------------------------------------------- DTC frames


def _frames(phantom: float, n: int = 4, protons: int = 50, seed: int = 0, **kw):
    from trkx.stages.data.pct import PCTConfig, simulate_frames
    cfg = PCTConfig(phantom_mm=phantom, protons_per_frame=protons, **kw)
    cfg.validate()
    return simulate_frames(cfg, n, np.random.default_rng(seed))


def test_dtc_frames_have_one_hit_per_proton_and_layer_until_it_stops():
    frames = _frames(150.0)
    assert len(frames) == 4
    for df in frames:
        assert df.groupby(["particle_id", "layer_id"]).size().max() == 1
        span = df.groupby("particle_id").layer_id.agg(["min", "max", "size"])
        assert (span["min"] == 0).mean() > 0.95                        # nearly all reach the first tracker
        assert (span["max"] - span["min"] + 1 == span["size"]).all()  # no gaps: one hit per layer crossed
        assert set(df.volume_id) == {1, 2} and df[df.layer_id < 2].volume_id.eq(1).all()
        assert df.weight.sum() == pytest.approx(1.0)
        assert df.hit_id.tolist() == list(range(1, len(df) + 1))


def test_stopping_layer_moves_upstream_with_thicker_phantoms():
    """Residual range after the phantom: 230 MeV protons stop deeper behind 100 mm of water than
    behind 150 or 200 mm; each extra 50 mm of water is ~6 calorimeter layers (5.55 mm pitch,
    ~8 mm water-equivalent each)."""
    stop = {}
    for phantom in (100.0, 150.0, 200.0):
        df = pd.concat(_frames(phantom, n=4, protons=100, nuclear_interactions=False))
        stop[phantom] = df.groupby("particle_id").layer_id.max().median()
    assert stop[100.0] > stop[150.0] > stop[200.0]
    assert 4 <= stop[100.0] - stop[150.0] <= 9 and 4 <= stop[150.0] - stop[200.0] <= 9


def test_frames_are_reproducible_from_the_seed():
    a, b, c = _frames(100.0, seed=5), _frames(100.0, seed=5), _frames(100.0, seed=6)
    pd.testing.assert_frame_equal(a[0], b[0])
    assert not a[0].equals(c[0])


def test_bad_pct_config_is_rejected():
    from trkx.stages.data.pct import PCTConfig
    with pytest.raises(ValueError, match="phantom"):
        PCTConfig(phantom_mm=290.0, phantom_gap_mm=20.0).validate()
    with pytest.raises(ValueError, match="spot_range_mm"):
        PCTConfig(spot_range_mm=[1.0]).validate()


# --------------------------------------------------------------------------- reconstruction


def _events(phantom=150.0, n=3, protons=60, seed=1):
    from trkx.stages.data.source import DataConfig, EventSource
    from trkx.stages.data.pct import PCTConfig
    cfg = DataConfig(source="pct", n_train=n, n_val=0, n_test=0, seed=seed,
                     pct=PCTConfig(phantom_mm=phantom, protons_per_frame=protons),
                     features=["x", "y", "z", "cluster_size"], feature_scales=[100.0, 100.0, 500.0, 20.0],
                     regions={"tracker": [1], "calorimeter": [2]})
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        return [ev for _, _, ev in EventSource(cfg).pct_events(Path(tmp), ["train"] * n)]


def test_layer_pair_graph_joins_adjacent_layers_and_keeps_the_true_segments():
    from trkx.stages.graph_construction.layer_pairs import LayerPairs, LayerPairsConfig
    train, test = _events(seed=1, n=4), _events(seed=2, n=2)
    stage = LayerPairs(LayerPairsConfig(quantile=1.0, margin=0.1))
    report = stage.fit(train, test)
    assert report["val_truth_edge_efficiency"] > 0.99
    for ev in test:
        out = stage.infer(ev.clone())
        src, dst = out.edge_index
        assert torch.equal(out.layer_id[dst] - out.layer_id[src], torch.ones_like(src))   # l -> l + 1
        assert 0.3 < float(out.y.float().mean()) < 1.0      # true segments and some fakes
        # the cut is taken from the truth: the front layers, where protons are fast, get narrower cuts
    assert float(stage.cuts[0]) < float(stage.cuts[-1])


def test_planar_edge_features_are_segment_differences_slopes_and_angle():
    from trkx.event import edge_features
    ev = _events(n=1)[0]
    first = int(torch.nonzero(ev.layer_id == 0)[0])                 # a hit in layer 0 and its particle's next one
    second = int(torch.nonzero((ev.layer_id == 1) & (ev.particle_id == ev.particle_id[first]))[0])
    ei = torch.tensor([[first], [second]])
    f = edge_features(ev, ei)[0]
    x, y = ev.r * torch.cos(ev.phi), ev.r * torch.sin(ev.phi)
    dx, dy, dz = float(x[second] - x[first]), float(y[second] - y[first]), float(ev.z[second] - ev.z[first])
    assert dz == pytest.approx(2.795, abs=1e-3)                   # the tracker pitch
    assert f[0] == pytest.approx(dx, abs=1e-4) and f[1] == pytest.approx(dy, abs=1e-4)
    assert f[2] == pytest.approx(dz / 10, abs=1e-5)
    assert f[5] == pytest.approx(10 * np.arctan2(np.hypot(dx, dy), abs(dz)), rel=1e-4)


def test_greedy_matching_takes_the_smallest_costs_first():
    from trkx.stages.track_building.track_follower import greedy_matching
    a = np.array([0, 0, 1, 1, 2])
    b = np.array([0, 1, 0, 1, 1])
    cost = np.array([0.1, 0.2, 0.05, 0.3, 0.15])
    # (1, 0) is cheapest; then (2, 1); track 0 is left without a hit
    assert greedy_matching(a, b, cost).tolist() == [False, False, True, False, True]


def test_greedy_matching_equals_the_one_pair_at_a_time_greedy_with_ties():
    from trkx.stages.track_building.track_follower import greedy_matching
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 40, 600), rng.integers(5, 50, 600)
    cost = rng.integers(0, 30, 600).astype(float)          # many ties: the earlier pair wins
    keep, used_a, used_b = np.zeros(600, dtype=bool), set(), set()
    for i in np.argsort(cost, kind="stable"):               # the reference: one pair at a time
        if a[i] not in used_a and b[i] not in used_b:
            keep[i] = True
            used_a.add(a[i])
            used_b.add(b[i])
    assert np.array_equal(greedy_matching(a, b, cost), keep)
    assert not greedy_matching(a[:0], b[:0], cost[:0]).any()


def test_track_follower_is_perfect_on_separated_protons_and_degrades_with_density():
    from trkx.metrics.frames import frame_purity_efficiency
    from trkx.stages.track_building.track_follower import TrackFollower, TrackFollowerConfig
    follower = TrackFollower(TrackFollowerConfig())

    def score(events):
        rows = [pd.DataFrame({"event_id": ev.event_id, "particle_id": ev.particle_id.numpy(),
                              "track_id": follower.infer(ev.clone()).track_id.numpy()}) for ev in events]
        return frame_purity_efficiency(pd.concat(rows), 5)
    sparse = score(_events(n=2, protons=5))
    dense = score(_events(n=2, protons=150))
    assert sparse["purity"] > 0.95
    assert dense["purity"] < sparse["purity"]


def test_frame_purity_and_efficiency_follow_the_papers_definitions():
    from trkx.metrics.frames import frame_purity_efficiency
    hits = pd.DataFrame({
        "event_id": [1] * 12,
        # particle 1: 5 hits in track 0; particle 2: 5 hits, 4 in track 1 with one of particle 3;
        # particle 3: 2 hits; a noise hit in track 2 with 4 hits of particle 1? no: track 2 = 5 hits of
        "particle_id": [1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 2, 3],
        "track_id":    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, -1, 2],
    })
    m = frame_purity_efficiency(hits, 5)
    # counted tracks (>= 5 hits): 0 (pure) and 1 (mixed); track 2 has one hit
    assert m["purity"] == pytest.approx(0.5)
    assert m["efficiency"] == pytest.approx(1 / 3)     # one correct track, three particles


def _pct_pipeline(root: Path, template: str, **stage_overrides) -> Path:
    """A copy of ``configs/<template>`` with small data (6 / 2 / 3 frames of 40 protons)."""
    import shutil
    import yaml
    repo = Path(__file__).resolve().parent.parent / "configs"
    shutil.copytree(repo / "stages", root / "stages", dirs_exist_ok=True)
    data = yaml.safe_load((root / "stages" / "data_pct.yaml").read_text())
    data.update(n_train=6, n_val=2, n_test=3)
    data["pct"]["protons_per_frame"] = 40
    (root / "stages" / "data_pct.yaml").write_text(yaml.safe_dump(data))
    for name, over in stage_overrides.items():
        path = root / "stages" / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **over}))
    pipe = yaml.safe_load((repo / template).read_text())
    pipe.update(workdir=str(root / Path(template).stem), cachedir=str(root / "cache"))
    (root / template).write_text(yaml.safe_dump(pipe))
    return root / template


def test_pct_pipelines_run_end_to_end_and_report_frame_metrics(tmp_path):
    """The follower and the GNN chains on the same frames through the CLI: per-frame purity and
    efficiency in metrics.json; the trained GNN chain is far better than chance."""
    import json
    from click.testing import CliRunner
    from trkx.cli import main
    follower = _pct_pipeline(tmp_path, "pipeline_pct_follower.yaml")
    gnn = _pct_pipeline(tmp_path, "pipeline_pct.yaml", gnn_pct={"epochs": 4})
    for path in (follower, gnn):
        result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert "per frame (proton-CT definitions" in result.output
    m_follow = json.loads((tmp_path / "pipeline_pct_follower" / "metrics.json").read_text())["frame"]
    m_gnn = json.loads((tmp_path / "pipeline_pct" / "metrics.json").read_text())
    for m in (m_follow, m_gnn["frame"]):
        assert m["frames"] == 3 and m["min_track_hits"] == 5
        assert m["purity"] > 0.6 and m["efficiency"] > 0.6
    edges = m_gnn["edge"]
    assert set(edges["layer_pairs"]["per_region"]) <= {"tracker", "calorimeter"}
    assert edges["gnn_ptt"]["roc_auc"] > 0.85             # chance: 0.5


def test_pct_source_rejects_an_unknown_key(tmp_path):
    from click.testing import CliRunner
    from trkx.cli import main
    path = _pct_pipeline(tmp_path, "pipeline_pct_follower.yaml")
    data = tmp_path / "stages" / "data_pct.yaml"
    data.write_text(data.read_text().replace("phantom_mm:", "phantom_thickness:"))
    result = CliRunner().invoke(main, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "phantom_thickness" in result.output and "data_pct.yaml" in result.output
