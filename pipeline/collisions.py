"""Collision events for the ACTS simulation: Pythia 8 hard processes with Poisson pile-up, or events
read from a user's HepMC3 files, merged into one HepMC3 record per bunch crossing.

Each crossing is a list of collisions (the hard scatter first, then the pile-up collisions), each at
its own vertex in the luminous region.  A collision keeps its final-state particles and, for those
produced away from the collision point (decays of K0s, Lambda, b and c hadrons...), their decayed
mother, so that ACTS's ``HepMC3InputConverter`` numbers the hard scatter as primary vertex 1, the
pile-up collisions 2, 3, ... and the displaced decays as secondary vertices.

Every random number of crossing k (the Poisson pile-up count, the vertices, Pythia's own stream,
the pile-up events drawn from a HepMC3 pool) comes from ``SeedSequence([seed, k, stream])``: a
crossing depends on (seed, k) only, not on which crossings were generated before it."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trkx.errors import DataError

# Pythia 8 settings of each hard process (sqrt(s) is set apart)
HARD_PROCESSES = {
    "ttbar": ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    # Z -> mu mu only (no gamma*), the Z mass window Pythia uses by default
    "zmumu": ["WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 13"],
    "none": [],
}
# <mu> counts inelastic proton-proton collisions, so pile-up is Pythia's inelastic soft QCD
PILEUP_PROCESS = ["SoftQCD:inelastic = on"]
DISPLACED_MM = 1e-3        # a final-state particle made further than this from its collision is displaced
MAX_PYTHIA_SEED = 900_000_000
STATUS_FINAL, STATUS_DECAYED, STATUS_BEAM = 1, 2, 4   # HepMC3 status codes ACTS reads


@dataclass
class HepMC3Inputs:
    """A user's generated events: ``hard_scatter`` files give one collision per crossing, in order;
    ``pileup`` files are a pool from which each crossing draws its Poisson number of collisions."""
    hard_scatter: list[str] = field(default_factory=list)
    pileup: list[str] = field(default_factory=list)


@dataclass
class CollisionConfig:
    """Proton-proton bunch crossings: a hard process plus ``pileup`` (<mu>) soft-QCD collisions on
    average (Poisson), each at its own vertex (the simulation's luminous region)."""
    hard_process: str = "ttbar"          # ttbar | zmumu | none (minimum bias only)
    pileup: float = 200.0                # <mu>: mean number of pile-up collisions per crossing
    sqrt_s_gev: float = 14000.0
    pythia_settings: list[str] = field(default_factory=list)   # extra Pythia 8 lines for the hard process
    hepmc3: HepMC3Inputs = field(default_factory=HepMC3Inputs)  # for generator: hepmc3

    def check(self, generator: str) -> None:
        """The keys against each other, for ``generator`` (called by the simulation config)."""
        if self.hard_process not in HARD_PROCESSES:
            raise ValueError(f"key 'hard_process': expected one of {', '.join(map(repr, HARD_PROCESSES))}, "
                             f"got {self.hard_process!r}")
        if not 0 <= self.pileup <= 10_000:
            raise ValueError("key 'pileup': need 0 <= pileup <= 10000")
        if self.sqrt_s_gev <= 0:
            raise ValueError("key 'sqrt_s_gev': must be positive")
        if generator == "pythia8" and self.hard_process == "none" and self.pileup == 0:
            raise ValueError("hard_process 'none' with pileup 0 makes empty crossings")
        if generator == "hepmc3":
            h = self.hepmc3
            if not h.hard_scatter and not h.pileup:
                raise ValueError("key 'hepmc3': give 'hard_scatter' and/or 'pileup' files")
            if self.pileup > 0 and not h.pileup:
                raise ValueError("key 'hepmc3.pileup': pileup > 0 needs pile-up files")


@dataclass
class Collision:
    """One collision's particles relative to its own vertex: final-state particles (``pdg``,
    ``p4`` (n, 4) GeV, ``mass``, ``pos`` (n, 4) mm production position) and ``mother`` (n,),
    the index into ``mothers_*`` of a displaced particle's decayed mother or -1 if prompt."""
    pdg: np.ndarray
    p4: np.ndarray
    mass: np.ndarray
    pos: np.ndarray
    mother: np.ndarray
    mother_pdg: np.ndarray
    mother_pos: np.ndarray     # (m, 4): where each mother decayed


def stream_rng(seed: int, crossing: int, stream: int) -> np.random.Generator:
    """The random generator of one (seed, crossing, stream)."""
    return np.random.default_rng(np.random.SeedSequence([seed, crossing, stream]))


def pythia_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1, MAX_PYTHIA_SEED))


@contextlib.contextmanager
def quiet_fd1():
    """C++ code prints on fd 1 (Pythia its banner and statistics, ACTS its geometry-building INFO
    lines); keep it off the terminal while it runs."""
    import sys
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


class PythiaSource:
    """One initialised Pythia 8 instance for a process; ``collision(seed)`` reseeds its stream and
    returns the next accepted event's particles."""

    def __init__(self, settings: list[str], sqrt_s_gev: float):
        import pythia8mc
        with quiet_fd1():
            self.pythia = pythia8mc.Pythia("", False)
            for line in [*settings, f"Beams:eCM = {sqrt_s_gev}", "Random:setSeed = on", "Print:quiet = on",
                         "Next:numberCount = 0"]:
                if not self.pythia.readString(line):
                    raise ValueError(f"Pythia 8 does not accept the setting {line!r}")
            if not self.pythia.init():
                raise ValueError(f"Pythia 8 failed to initialise with {settings}")

    def collision(self, seed: int) -> Collision:
        self.pythia.rndm.init(seed)
        with quiet_fd1():
            while not self.pythia.next():      # a failed event is retried from the same stream
                pass
        return pythia_collision(self.pythia.event)


def pythia_collision(event) -> Collision:
    """Final-state particles of a Pythia event record and the decayed mothers of displaced ones."""
    rows = [(p.id(), p.px(), p.py(), p.pz(), p.e(), p.m(), p.xProd(), p.yProd(), p.zProd(), p.tProd(),
             p.mother1(), p.isFinal()) for p in event]
    a = np.array(rows, dtype=np.float64)
    f = a[:, 11] > 0
    pos = a[f, 6:10]
    mother, mothers, mother_pos = group_displaced(a[f, 10].astype(np.int64), pos)
    return Collision(pdg=a[f, 0].astype(np.int64), p4=a[f, 1:5], mass=a[f, 5], pos=pos, mother=mother,
                     mother_pdg=a[mothers, 0].astype(np.int64), mother_pos=mother_pos)


def group_displaced(mother_key: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For final-state particles made at ``pos`` (relative to their collision) by the mother
    ``mother_key``: each one's index among the displaced particles' distinct mothers (-1 if prompt),
    those mothers' keys, and where each decayed (where its displaced daughters were made)."""
    displaced = np.abs(pos[:, :3]).max(axis=1) > DISPLACED_MM
    keys, index = np.unique(mother_key[displaced], return_inverse=True)
    mother = np.full(len(pos), -1, dtype=np.int64)
    mother[displaced] = index
    first = np.zeros(len(keys), dtype=np.int64)
    first[index] = np.flatnonzero(displaced)
    return mother, keys, pos[first]


def hepmc3_collisions(paths: list[str], base_dir: Path) -> list[Collision]:
    """Every event of the given HepMC3 files (any format pyhepmc reads) as collisions relative to
    their own primary vertex (the first vertex whose incoming particles are all beams, or have none)."""
    import pyhepmc

    out = []
    for name in paths:
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        if not path.is_file():
            raise DataError(f"{path}: HepMC3 file not found")
        before = len(out)
        try:
            with pyhepmc.open(str(path)) as reader:
                for event in reader:
                    out.append(hepmc3_collision(event, path))
        except (OSError, RuntimeError, ValueError) as err:
            raise DataError(f"{path}: not a readable HepMC3 file ({err})") from None
        if len(out) == before:          # pyhepmc reads a file of another format as no events
            raise DataError(f"{path}: no HepMC3 events read (not a HepMC3 file, or empty)")
    return out


def hepmc3_collision(event, where) -> Collision:
    import pyhepmc
    event.set_units(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    origin = None
    for v in event.vertices:
        if not v.particles_in or all(p.status == STATUS_BEAM for p in v.particles_in):
            origin = np.array([v.position.x, v.position.y, v.position.z, v.position.t])
            break
    finals = [p for p in event.particles if p.status == STATUS_FINAL and p.end_vertex is None]
    if origin is None or not finals:
        raise DataError(f"{where}: event {event.event_number} has no primary vertex or no final-state particles")
    pos, pdg, p4, mass, mkey = [], [], [], [], []
    for p in finals:
        v = p.production_vertex
        xyz = np.array([v.position.x, v.position.y, v.position.z, v.position.t]) if v is not None else origin
        pos.append(xyz - origin)
        pdg.append(p.pid)
        p4.append([p.momentum.px, p.momentum.py, p.momentum.pz, p.momentum.e])
        mass.append(p.generated_mass)
        mkey.append(v.id if v is not None and v.particles_in else 0)
    pos = np.array(pos)
    mother, keys, mother_pos = group_displaced(np.array(mkey), pos)
    # a displaced decay's mother: the first incoming particle of its vertex
    first_in = {v.id: int(v.particles_in[0].pid) for v in event.vertices if v.particles_in}
    mother_pdg = np.array([first_in.get(int(k), 0) for k in keys], dtype=np.int64)
    return Collision(pdg=np.array(pdg, dtype=np.int64), p4=np.array(p4, dtype=np.float64).reshape(-1, 4),
                     mass=np.array(mass, dtype=np.float64), pos=pos, mother=mother,
                     mother_pdg=mother_pdg, mother_pos=mother_pos)


@dataclass
class Crossing:
    """One bunch crossing: its collisions (hard scatter first when there is one) and their vertices (c, 4) mm."""
    collisions: list[Collision]
    vertices: np.ndarray
    hard_scatter: bool


class CrossingGenerator:
    """Makes bunch crossing k from (seed, k): the hard collision, a Poisson number of pile-up
    collisions, and a vertex for each drawn from the luminous region."""

    def __init__(self, cfg: CollisionConfig, generator: str, vertex_sigma_xy: float, vertex_sigma_z: float,
                 base_dir: Path | None = None):
        self.cfg, self.generator = cfg, generator
        self.sigma = np.array([vertex_sigma_xy, vertex_sigma_xy, vertex_sigma_z])
        base_dir = base_dir or Path.cwd()
        if generator == "pythia8":
            hard = HARD_PROCESSES[cfg.hard_process]
            self.hard = PythiaSource(hard + list(cfg.pythia_settings), cfg.sqrt_s_gev) if hard else None
            self.soft = PythiaSource(PILEUP_PROCESS, cfg.sqrt_s_gev) if cfg.pileup > 0 else None
            self.hard_pool = self.soft_pool = None
        elif generator == "hepmc3":
            self.hard = self.soft = None
            self.hard_pool = hepmc3_collisions(cfg.hepmc3.hard_scatter, base_dir)
            self.soft_pool = hepmc3_collisions(cfg.hepmc3.pileup, base_dir)
        else:
            raise ValueError(f"unknown generator {generator!r}")

    @property
    def has_hard_scatter(self) -> bool:
        return self.hard is not None or bool(self.hard_pool)

    def crossing(self, seed: int, k: int) -> Crossing:
        rng = stream_rng(seed, k, 0)
        n_pileup = int(rng.poisson(self.cfg.pileup)) if self.cfg.pileup > 0 else 0
        collisions = []
        if self.hard is not None:
            collisions.append(self.hard.collision(pythia_seed(stream_rng(seed, k, 1))))
        elif self.hard_pool:
            if k >= len(self.hard_pool):
                raise DataError(f"event {k}: the hard-scatter HepMC3 files ({', '.join(self.cfg.hepmc3.hard_scatter)}) "
                                f"hold only {len(self.hard_pool)} events")
            collisions.append(self.hard_pool[k])
        if self.soft is not None:
            soft_rng = stream_rng(seed, k, 2)
            collisions += [self.soft.collision(pythia_seed(soft_rng)) for _ in range(n_pileup)]
        elif self.soft_pool:
            picks = stream_rng(seed, k, 2).integers(len(self.soft_pool), size=n_pileup)
            collisions += [self.soft_pool[i] for i in picks]
        vertices = np.zeros((len(collisions), 4))
        vertices[:, :3] = stream_rng(seed, k, 3).normal(size=(len(collisions), 3)) * self.sigma
        return Crossing(collisions, vertices, self.has_hard_scatter)


def crossing_hepevt(crossing: Crossing) -> dict[str, np.ndarray]:
    """The crossing as HEPEVT arrays (0-based parents, inclusive ranges): per collision two beam
    protons whose children are the prompt particles and the decayed mothers, the mothers' children
    their displaced daughters.  Particles are laid out [beams, prompt, mothers, daughters]."""
    cols = {k: [] for k in ("pid", "status", "p4", "m", "pos", "parents")}
    start = 0
    for coll, vtx in zip(crossing.collisions, crossing.vertices):
        prompt = coll.mother < 0
        order = np.argsort(coll.mother[~prompt], kind="stable")
        daughters = np.flatnonzero(~prompt)[order]
        n_b, n_p, n_m, n_d = 2, int(prompt.sum()), len(coll.mother_pdg), len(daughters)
        beams_p4 = np.array([[0, 0, 1, 1], [0, 0, -1, 1]], dtype=np.float64) * 7000.0
        # a mother carries its daughters' summed momentum (it is never simulated, only decays)
        m_p4 = np.zeros((n_m, 4))
        np.add.at(m_p4, coll.mother[daughters], coll.p4[daughters])
        m_mass = np.sqrt(np.maximum(m_p4[:, 3] ** 2 - (m_p4[:, :3] ** 2).sum(1), 0.0))
        pid = np.concatenate([[2212, 2212], coll.pdg[prompt], coll.mother_pdg, coll.pdg[daughters]])
        status = np.concatenate([[STATUS_BEAM] * 2, [STATUS_FINAL] * n_p, [STATUS_DECAYED] * n_m,
                                 [STATUS_FINAL] * n_d])
        p4 = np.concatenate([beams_p4, coll.p4[prompt], m_p4, coll.p4[daughters]])
        mass = np.concatenate([[0.938272] * 2, coll.mass[prompt], m_mass, coll.mass[daughters]])
        pos = np.concatenate([np.zeros((2, 4)), coll.pos[prompt] * 0.0, np.zeros((n_m, 4)),
                              coll.mother_pos[coll.mother[daughters]]]) + vtx
        parents = np.full((n_b + n_p + n_m + n_d, 2), -1, dtype=np.int64)
        parents[n_b:n_b + n_p + n_m] = [start, start + 1]
        parents[n_b + n_p + n_m:] = (start + n_b + n_p + coll.mother[daughters])[:, None]
        for k, v in zip(cols, (pid, status, p4, mass, pos, parents)):
            cols[k].append(v)
        start += n_b + n_p + n_m + n_d
    if not crossing.collisions:
        return {"pid": np.zeros(0, np.int64), "status": np.zeros(0, np.int64), "p4": np.zeros((0, 4)),
                "m": np.zeros(0), "pos": np.zeros((0, 4)), "parents": np.zeros((0, 2), np.int64)}
    return {k: np.concatenate(v) for k, v in cols.items()}


def write_crossings(path: Path, crossings, first_number: int = 0, padding: int = 0) -> int:
    """Write crossings as consecutive HepMC3 ASCII events numbered from ``first_number``, after
    ``padding`` empty events (numbered from 0) that a reader skipping to ``first_number`` passes over;
    returns the number of crossings written."""
    import pyhepmc
    n = 0
    with pyhepmc.open(str(path), "w") as out:
        for i in range(padding):
            ev = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
            ev.event_number = i
            out.write(ev)
        for crossing in crossings:
            h = crossing_hepevt(crossing)
            ev = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
            ev.from_hepevt(event_number=first_number + n, px=h["p4"][:, 0], py=h["p4"][:, 1], pz=h["p4"][:, 2],
                           en=h["p4"][:, 3], m=h["m"], pid=h["pid"].astype(np.int32),
                           status=h["status"].astype(np.int32), parents=h["parents"], vx=h["pos"][:, 0],
                           vy=h["pos"][:, 1], vz=h["pos"][:, 2], vt=h["pos"][:, 3], fortran=False)
            out.write(ev)
            n += 1
    return n
