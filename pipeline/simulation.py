"""Event simulation with ACTS (pyacts): generic detector, 2 T solenoid, Fatras, Gaussian smearing
digitisation with TrackML resolutions; output in the TrackML CSV format."""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trkx.collisions import CollisionConfig, CrossingGenerator, quiet_fd1, write_crossings
from trkx.io.acts import read_acts_event
from trkx.io.trackml import write_trackml_event

# Generic detector volumes (the TrackML layout): pixel 7/8/9, short strip 12/13/14, long strip 16/17/18.
# Resolutions are pitch / sqrt(12) in local (0, 1), in mm.
TRACKML_RESOLUTION_MM = {
    "pixel": ((7, 8, 9), (0.050, 0.050)),
    "short_strip": ((12, 13, 14), (0.080, 1.2)),
    "long_strip": ((16, 17, 18), (0.120, 10.8)),
}


@dataclass
class GunConfig:
    """One particle species of the event: ``particles_per_vertex`` particles of ``pdg`` at each
    of the gun's vertices, flat in pT (GeV) and eta."""
    pdg: int = 13
    particles_per_vertex: int = 40
    pt_min: float = 0.5
    pt_max: float = 10.0
    eta_min: float = -2.5
    eta_max: float = 2.5
    randomize_charge: bool = True

    def validate(self) -> None:
        if self.particles_per_vertex < 1:
            raise ValueError("particles_per_vertex must be >= 1")
        if not 0 < self.pt_min < self.pt_max:
            raise ValueError("need 0 < pt_min < pt_max")
        if not self.eta_min < self.eta_max:
            raise ValueError("need eta_min < eta_max")


GENERATORS = ("gun", "pythia8", "hepmc3")


@dataclass
class SimulationConfig:
    # gun: the particle guns below; pythia8: Pythia 8 collisions with pile-up; hepmc3: a user's
    # generated events (``collisions.hepmc3``).  Left out of the fingerprint while default.
    generator: str = field(default="gun", metadata={"omit_default": True})
    collisions: CollisionConfig = field(default_factory=CollisionConfig, metadata={"omit_default": True})
    n_vertices: int = 5
    # the single gun used when ``guns`` is empty
    particles_per_vertex: int = 40
    pt_min: float = 0.5          # GeV, transverse momentum
    pt_max: float = 10.0
    eta_min: float = -2.5
    eta_max: float = 2.5
    pdg: int = 13                # muons by default
    randomize_charge: bool = True
    # a particle mix: each gun draws its own ``n_vertices`` vertices from the luminous region
    guns: list[GunConfig] = field(default_factory=list)
    vertex_sigma_z: float = 55.5  # mm, luminous region
    vertex_sigma_xy: float = 0.0125
    bfield_tesla: float = 2.0
    enable_interactions: bool = True   # Fatras multiple scattering, energy loss, hadronic interactions

    def validate(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"key 'generator': expected one of {', '.join(map(repr, GENERATORS))}, "
                             f"got {self.generator!r}")
        if self.generator != "gun":
            try:
                self.collisions.check(self.generator)
            except ValueError as err:
                raise ValueError(f"simulation.collisions: {err}") from None
        if self.n_vertices < 1:
            raise ValueError("simulation: n_vertices must be >= 1")
        for i, gun in enumerate(self.all_guns()):
            try:
                gun.validate()
            except ValueError as err:
                raise ValueError(f"simulation: gun {i}: {err}") from None

    def all_guns(self) -> list[GunConfig]:
        """The configured guns, or the single gun of the top-level keys."""
        if self.guns:
            return list(self.guns)
        return [GunConfig(self.pdg, self.particles_per_vertex, self.pt_min, self.pt_max, self.eta_min,
                          self.eta_max, self.randomize_charge)]

    @property
    def has_hard_scatter(self) -> bool:
        """Whether primary vertex 1 of every event is a hard scatter (Pythia's hard process or a
        user's hard-scatter file) rather than one vertex among equals (guns, minimum bias)."""
        c = self.collisions
        if self.generator == "pythia8":
            return c.hard_process != "none"
        return self.generator == "hepmc3" and bool(c.hepmc3.hard_scatter)

    def particles_per_event(self) -> int:
        return self.n_vertices * sum(g.particles_per_vertex for g in self.all_guns())


def smearing_config() -> dict:
    """ACTS digitisation JSON for Gaussian smearing with TrackML resolutions per volume."""
    entries = []
    for volumes, (res0, res1) in TRACKML_RESOLUTION_MM.values():
        for volume in volumes:
            entries.append({"volume": volume, "value": {"smearing": [
                {"index": 0, "mean": 0.0, "stddev": res0 / math.sqrt(12.0), "type": "Gauss"},
                {"index": 1, "mean": 0.0, "stddev": res1 / math.sqrt(12.0), "type": "Gauss"},
            ]}})
    return {"acts-geometry-hierarchy-map": {"format-version": 0, "value-identifier": "digitization-configuration"},
            "entries": entries}


def add_particle_guns(seq, cfg: SimulationConfig, rnd, out_dir: Path) -> None:
    """One ACTS event generator with a parametric particle generator per gun (each with its own
    ``n_vertices`` vertices); with one gun this is exactly ACTS's ``addParticleGun``."""
    import acts
    import acts.examples
    from acts.examples import EventGenerator

    u = acts.UnitConstants
    quiet = acts.logging.WARNING
    vertex = acts.examples.GaussianVertexGenerator(
        stddev=acts.Vector4(cfg.vertex_sigma_xy * u.mm, cfg.vertex_sigma_xy * u.mm, cfg.vertex_sigma_z * u.mm, 0),
        mean=acts.Vector4(0, 0, 0, 0))
    generators = [
        EventGenerator.Generator(
            multiplicity=acts.examples.FixedMultiplicityGenerator(n=cfg.n_vertices),
            vertex=vertex,
            particles=acts.examples.ParametricParticleGenerator(
                p=(gun.pt_min * u.GeV, gun.pt_max * u.GeV), pTransverse=True, eta=(gun.eta_min, gun.eta_max),
                etaUniform=True, numParticles=gun.particles_per_vertex, pdg=acts.PdgParticle(gun.pdg),
                randomizeCharge=gun.randomize_charge))
        for gun in cfg.all_guns()]
    gen = EventGenerator(level=quiet, generators=generators, randomNumbers=rnd, outputEvent="particle_gun_event")
    seq.addReader(gen)
    add_generated_particles(seq, gen.config.outputEvent, out_dir, merge_primaries=False)


def add_generated_particles(seq, event: str, out_dir: Path, merge_primaries: bool) -> None:
    """ACTS's HepMC3 converter on the generated ``event``, the aliases Fatras reads, and the
    generated particles written as CSV."""
    import acts
    import acts.examples
    from acts.examples.hepmc3 import HepMC3InputConverter

    quiet = acts.logging.WARNING
    seq.addAlgorithm(HepMC3InputConverter(level=quiet, inputEvent=event, outputParticles="particles_generated",
                                          outputVertices="vertices_generated", mergePrimaries=merge_primaries))
    seq.addWhiteboardAlias("particles", "particles_generated")
    seq.addWhiteboardAlias("vertices_truth", "vertices_generated")
    seq.addWhiteboardAlias("particles_generated_selected", "particles_generated")
    seq.addWriter(acts.examples.CsvParticleWriter(level=quiet, inputParticles="particles_generated",
                                                  outputDir=str(out_dir), outputStem="particles"))


def add_collisions(seq, cfg: SimulationConfig, seed: int, skip: int, n_events: int, out_dir: Path,
                   base_dir: Path | None, progress: bool) -> None:
    """Generate the bunch crossings ``skip .. skip + n_events`` (Pythia 8 or a user's HepMC3 files),
    write them as one HepMC3 file and read it with ACTS's HepMC3 reader and converter, which number
    the hard scatter as primary vertex 1 and the pile-up collisions after it."""
    import acts
    from acts.examples.hepmc3 import HepMC3Reader

    quiet = acts.logging.WARNING
    gen = CrossingGenerator(cfg.collisions, cfg.generator, cfg.vertex_sigma_xy, cfg.vertex_sigma_z, base_dir)
    crossings = (gen.crossing(seed, k) for k in tqdm(range(skip, skip + n_events), desc="generate crossings",
                                                     disable=not progress, leave=False))
    path = out_dir / "crossings.hepmc3"
    # the reader skips ``skip`` events from the start of its file: empty ones stand in for them
    write_crossings(path, crossings, first_number=skip, padding=skip)
    seq.addReader(HepMC3Reader(level=quiet, inputPath=str(path), outputEvent="hepmc3_event", numEvents=skip + n_events))
    add_generated_particles(seq, "hepmc3_event", out_dir, merge_primaries=True)


def run_acts(cfg: SimulationConfig, n_events: int, seed: int, out_dir: Path, skip: int = 0,
             extend=None, threads: int = 1, base_dir: Path | None = None, progress: bool = False) -> None:
    """Run ACTS particle gun + Fatras + smearing digitisation, writing ACTS CSVs to ``out_dir``.
    ``skip`` starts at a later event (each event's random numbers depend on its number only, so
    ``threads`` > 1, ACTS's own event-parallel TBB scheduling, gives the same events);
    ``extend(seq, geometry, field)`` may add reconstruction after the digitisation.  Collision
    generators make their crossings first (``base_dir`` resolves relative HepMC3 file names)."""
    import acts
    import acts.examples
    from acts.examples.simulation import addDigitization, addFatras

    u = acts.UnitConstants
    out_dir.mkdir(parents=True, exist_ok=True)
    digi = out_dir / "digi-smearing.json"
    digi.write_text(json.dumps(smearing_config(), indent=1))
    with quiet_fd1():
        detector = acts.examples.GenericDetector()
        geometry = detector.trackingGeometry()
        field = acts.ConstantBField(acts.Vector3(0, 0, cfg.bfield_tesla * u.T))
        rnd = acts.examples.RandomNumbers(seed=seed)
        # hadronic interactions raise harmless floating-point exceptions inside Fatras; do not abort on them
        seq = acts.examples.Sequencer(events=n_events, skip=skip, numThreads=threads, logLevel=acts.logging.WARNING,
                                      trackFpes=False,
                                      outputDir=str(out_dir))
        if cfg.generator == "gun":
            add_particle_guns(seq, cfg, rnd, out_dir)
        else:
            add_collisions(seq, cfg, seed, skip, n_events, out_dir, base_dir, progress)
        addFatras(seq, geometry, field, rnd=rnd, enableInteractions=cfg.enable_interactions,
                  outputDirCsv=str(out_dir), logLevel=acts.logging.WARNING)
        addDigitization(seq, geometry, field, digiConfigFile=str(digi), outputDirCsv=str(out_dir),
                        rnd=rnd, logLevel=acts.logging.WARNING)
        if extend is not None:
            extend(seq, geometry, field)
        seq.run()


def simulate_events(cfg: SimulationConfig, n_events: int, seed: int, out_dir: str | Path,
                    first_event_id: int = 0, progress: bool = True, threads: int = 1,
                    base_dir: Path | None = None, client=None) -> list[int]:
    """Simulate ``n_events`` (on ``threads`` ACTS threads, or with ``client``, a dask.distributed
    Client, one task per event on its workers) and write them as TrackML CSVs in ``out_dir``;
    returns the event ids.  The particles carry their origin: ``vertex_id`` (ACTS's primary vertex
    number), ``hard_scatter`` (from the hard process) and ``primary`` (made by the generator, not
    by an interaction in the material).  Event k depends on (seed, k) only, so every way gives the
    same events."""
    if client is None:
        return simulate_chunk(cfg, seed, out_dir, first_event_id, 0, n_events, base_dir, threads, progress)
    from trkx.cluster import map_ordered
    task = partial(simulate_one, cfg, seed, str(Path(out_dir).resolve()), first_event_id,
                   base_dir.resolve() if base_dir else None)
    ids: list[int] = []
    for chunk in tqdm(map_ordered(client, task, [list(range(n_events))], {}), total=n_events, desc="simulate",
                      disable=not progress, leave=False):
        ids += chunk
    return ids


def simulate_one(cfg: SimulationConfig, seed: int, out_dir: str, first_event_id: int, base_dir: Path | None,
                 k: int) -> list[int]:
    """Event k alone (a cluster task); the same files as in a run of all events."""
    return simulate_chunk(cfg, seed, out_dir, first_event_id, k, 1, base_dir)


def simulate_chunk(cfg: SimulationConfig, seed: int, out_dir: str | Path, first_event_id: int, start: int,
                   count: int, base_dir: Path | None = None, threads: int = 1, progress: bool = False) -> list[int]:
    """Events ``start .. start + count`` of the run (ACTS's ``skip``), as TrackML CSVs with ids
    ``first_event_id + k``; returns the ids."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="trkx-acts-") as tmp:
        run_acts(cfg, count, seed, Path(tmp), skip=start, threads=threads, base_dir=base_dir, progress=progress)
        ids = []
        for k in tqdm(range(start, start + count), desc="convert to TrackML", disable=not progress, leave=False):
            tables = read_acts_event(tmp, k)
            p = tables.particles
            p["hard_scatter"] = ((p.vertex_id == 1) & cfg.has_hard_scatter).astype(np.int64)
            tables.event_id = first_event_id + k
            write_trackml_event(out_dir, tables)
            ids.append(tables.event_id)
    return ids
