"""Pythia 8 collisions with pile-up and HepMC3 input, through ACTS to TrackML CSVs, on small events."""
import numpy as np
import pandas as pd
import pytest

from trkx.collisions import CollisionConfig, Crossing, CrossingGenerator, hepmc3_collisions, write_crossings
from trkx.config import ConfigError, parse_config
from trkx.io.trackml import read_trackml_event
from trkx.simulation import SimulationConfig, simulate_events

pytest.importorskip("pythia8mc")


def sim_config(**collisions) -> SimulationConfig:
    return parse_config(SimulationConfig, {"generator": "pythia8", "collisions": collisions}, "test")


@pytest.fixture(scope="module")
def zmumu_pileup():
    return CrossingGenerator(CollisionConfig(hard_process="zmumu", pileup=3.0), "pythia8", 0.0125, 55.5)


def test_crossing_depends_on_seed_and_number_only(zmumu_pileup):
    later = [zmumu_pileup.crossing(11, k) for k in range(4)][3]
    again = zmumu_pileup.crossing(11, 3)       # generated straight after crossing 3, without 0..2
    assert len(later.collisions) == len(again.collisions)
    for a, b in zip(later.collisions, again.collisions):
        np.testing.assert_array_equal(a.pdg, b.pdg)
        np.testing.assert_array_equal(a.p4, b.p4)
    np.testing.assert_array_equal(later.vertices, again.vertices)
    assert not np.array_equal(zmumu_pileup.crossing(11, 2).collisions[0].p4[:2], later.collisions[0].p4[:2])
    other = zmumu_pileup.crossing(12, 3)
    assert not np.array_equal(other.collisions[0].p4[:2], later.collisions[0].p4[:2])


def test_pileup_count_follows_the_mean(zmumu_pileup):
    counts = np.array([len(zmumu_pileup.crossing(5, k).collisions) - 1 for k in range(60)])
    # Poisson(3): mean 3 within 4 standard errors, variance near the mean
    assert abs(counts.mean() - 3.0) < 4 * np.sqrt(3.0 / len(counts))
    assert 1.5 < counts.var() < 5.0


def test_vertices_follow_the_luminous_region():
    gen = CrossingGenerator(CollisionConfig(hard_process="none", pileup=40.0), "pythia8", 0.0125, 55.5)
    v = np.concatenate([gen.crossing(3, k).vertices for k in range(5)])
    assert 40 < v[:, 2].std() < 70 and v[:, 0].std() < 0.02


def test_zmumu_without_pileup_has_its_two_muons(tmp_path):
    cfg = sim_config(hard_process="zmumu", pileup=0)
    simulate_events(cfg, 2, seed=9, out_dir=tmp_path, first_event_id=0, progress=False)
    for event_id in (0, 1):
        t = read_trackml_event(tmp_path, event_id)
        p = t.particles
        muons = p[(p.primary == 1) & (np.abs(p.pdg) == 13)]
        raw = pd.read_csv(tmp_path / f"event{event_id:09d}-particles.csv")
        assert (raw.vertex_id == 1).all() and (raw.hard_scatter == 1).all()
        # the Z decays to a mu+ mu- pair; their invariant mass is near the Z mass
        ids = set(t.truth.particle_id[t.truth.particle_id != 0])
        assert len(muons) >= 2 and len(ids) >= 2
        mu = muons.assign(p2=muons.px ** 2 + muons.py ** 2 + muons.pz ** 2).nlargest(2, "p2")
        assert set(mu.q) == {-1, 1} and set(mu.pdg) == {-13, 13}
        e = np.sqrt(mu.p2 + 0.10566 ** 2)
        m = np.sqrt(e.sum() ** 2 - mu.px.sum() ** 2 - mu.py.sum() ** 2 - mu.pz.sum() ** 2)
        assert 60 < m < 120


def test_hard_scatter_and_pileup_are_labelled(tmp_path):
    cfg = sim_config(hard_process="zmumu", pileup=4)
    simulate_events(cfg, 1, seed=3, out_dir=tmp_path, first_event_id=0, progress=False)
    p = pd.read_csv(tmp_path / "event000000000-particles.csv")
    assert p.vertex_id.nunique() > 1
    assert ((p.hard_scatter == 1) == (p.vertex_id == 1)).all()
    # each collision sits at its own vertex: most primaries of a vertex (all but decay products)
    # start at one z, and the vertices' z differ
    prim = p[p.primary == 1].assign(z=lambda d: d.vz.round(4))
    share = prim.groupby("vertex_id").z.agg(lambda z: z.value_counts().iloc[0] / len(z))
    assert (share > 0.5).all()
    modes = prim.groupby("vertex_id").z.agg(lambda z: z.value_counts().index[0])
    assert modes.nunique() == len(modes)
    # material interactions make secondaries that are not primaries
    assert (p.primary == 0).any()


def test_the_same_config_gives_the_same_hits(tmp_path):
    cfg = sim_config(hard_process="zmumu", pileup=2)
    simulate_events(cfg, 2, seed=21, out_dir=tmp_path / "a", first_event_id=0, progress=False)
    simulate_events(cfg, 2, seed=21, out_dir=tmp_path / "b", first_event_id=0, progress=False)
    for name in ("event000000001-hits.csv", "event000000001-particles.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_hepmc3_files_are_a_generator(tmp_path):
    """Crossings written as HepMC3 come back as a user's hard-scatter and pile-up files."""
    gen = CrossingGenerator(CollisionConfig(hard_process="zmumu", pileup=0), "pythia8", 0.0, 0.0)
    write_crossings(tmp_path / "hard.hepmc3", (gen.crossing(1, k) for k in range(3)))
    soft = CrossingGenerator(CollisionConfig(hard_process="none", pileup=5), "pythia8", 0.0, 0.0)
    pool = [Crossing([c], np.zeros((1, 4)), False) for c in soft.crossing(1, 0).collisions]
    write_crossings(tmp_path / "soft.hepmc3", pool)
    hard = hepmc3_collisions(["hard.hepmc3"], tmp_path)
    assert len(hard) == 3
    np.testing.assert_allclose(np.sort(hard[0].pdg), np.sort(gen.crossing(1, 0).collisions[0].pdg))
    cfg = parse_config(SimulationConfig, {"generator": "hepmc3", "collisions": {
        "pileup": 2.0, "hepmc3": {"hard_scatter": [str(tmp_path / "hard.hepmc3")],
                                  "pileup": [str(tmp_path / "soft.hepmc3")]}}}, "test")
    simulate_events(cfg, 2, seed=4, out_dir=tmp_path / "csv", first_event_id=0, progress=False)
    p = pd.read_csv(tmp_path / "csv" / "event000000001-particles.csv")
    assert (p.hard_scatter == (p.vertex_id == 1)).all() and p.hard_scatter.any()


@pytest.mark.parametrize("collisions, message", [
    ({"hard_process": "higgs"}, "hard_process"),
    ({"pileup": -1}, "pileup"),
    ({"hard_process": "none", "pileup": 0}, "empty crossings"),
])
def test_bad_collision_keys_name_the_key(collisions, message):
    with pytest.raises(ConfigError, match=message):
        sim_config(**collisions)


def test_hepmc3_generator_needs_files():
    with pytest.raises(ConfigError, match="hepmc3"):
        parse_config(SimulationConfig, {"generator": "hepmc3", "collisions": {"pileup": 0}}, "test")


def test_default_generator_keeps_gun_fingerprints():
    from trkx.config import config_to_dict
    assert "generator" not in config_to_dict(SimulationConfig())
    assert "collisions" not in config_to_dict(SimulationConfig())
    assert config_to_dict(sim_config(pileup=10))["collisions"]["pileup"] == 10


def test_event_content_counts_loopers_secondaries_and_hard_scatter():
    import importlib.util
    from pathlib import Path

    from trkx.io.trackml import EventTables
    spec = importlib.util.spec_from_file_location("event_content", Path(__file__).parents[1] / "benchmarks" / "event_content.py")
    content = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(content)
    # particle 1: 2 GeV hard scatter, 4 hits; 2: 0.2 GeV looper, 6 hits; 3: secondary, 2 hits; 4: no hits
    particles = pd.DataFrame({"particle_id": [1, 2, 3, 4], "px": [2.0, 0.2, 0.5, 1.0], "py": 0.0, "pz": 0.0,
                              "vx": 0.0, "vy": 0.0, "vz": 0.0, "q": 1, "nhits": [4, 6, 2, 0],
                              "hard_scatter": [1, 0, 0, 0], "primary": [1, 1, 0, 1]})
    pids = [1] * 4 + [2] * 6 + [3] * 2 + [0] * 3
    truth = pd.DataFrame({"hit_id": np.arange(1, 16), "particle_id": pids})
    hits = pd.DataFrame({"hit_id": np.arange(1, 16)})
    f = content.event_figures(EventTables(0, hits, truth, particles), bfield_tesla=2.0)
    assert f["particles with hits"] == 3 and f["hits"] == 15 and f["noise hits"] == 3
    assert f["generator particles (charged and neutral)"] == 3
    assert f["hits per particle"] == pytest.approx(4.0)
    assert f["loopers (share of particles with hits)"] == pytest.approx(1 / 3)
    assert f["loopers (share of hits)"] == pytest.approx(6 / 15)
    assert f["secondaries (share of hits)"] == pytest.approx(2 / 15)
    assert f["hard scatter (share of particles with hits)"] == pytest.approx(1 / 3)
    assert f["pT > 1 GeV particles with >= 3 hits"] == 1


def test_unreadable_or_short_hepmc3_inputs_name_the_file(tmp_path):
    from trkx.errors import DataError
    (tmp_path / "bad.hepmc3").write_text("not a HepMC3 file\n")
    with pytest.raises(DataError, match="bad.hepmc3: no HepMC3 events read"):
        hepmc3_collisions(["bad.hepmc3"], tmp_path)
    with pytest.raises(DataError, match="missing.hepmc3: HepMC3 file not found"):
        hepmc3_collisions(["missing.hepmc3"], tmp_path)
    gen = CrossingGenerator(CollisionConfig(hard_process="zmumu", pileup=0), "pythia8", 0.0, 0.0)
    write_crossings(tmp_path / "two.hepmc3", (gen.crossing(1, k) for k in range(2)))
    from trkx.collisions import HepMC3Inputs
    cfg = CollisionConfig(pileup=0, hepmc3=HepMC3Inputs(hard_scatter=["two.hepmc3"]))
    short = CrossingGenerator(cfg, "hepmc3", 0.0, 0.0, tmp_path)
    with pytest.raises(DataError, match="hold only 2 events"):
        short.crossing(1, 2)
