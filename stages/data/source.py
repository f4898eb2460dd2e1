"""Data source stage (``stage: data``): simulate or read events, apply transforms, build the event
graph (features, regions, truth)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Data

from trkx.errors import DataError
from trkx.fingerprint import file_digest
from trkx.io import FORMATS
from trkx.io.trackml import EventTables
from trkx.metrics.frames import frame_purity_efficiency
from trkx.simulation import SimulationConfig, simulate_events
from trkx.stage import DataSource, NoCppPort, register
from trkx.stages.data.pct import PCTConfig, simulate_frames
from trkx.stages.data.transforms import build_transforms

MAX_EVENT_ID = 999_999_999      # TrackML file names hold nine digits
GENERATED = ("simulate", "pct")  # sources whose events are made here, not read from input_dir
CPP_FEATURES = ("r", "phi", "z", "x", "y")   # the hit features the C++ tool computes


def _default_regions() -> dict:
    return {"pixel": [7, 8, 9], "short_strip": [12, 13, 14], "long_strip": [16, 17, 18]}


@dataclass
class DataConfig:
    # simulate | pct (events made here, proton-CT frames for pct) or a registered file format
    # (trkx.io.FORMATS: trackml, acts) read from input_dir
    source: str = "simulate"
    input_dir: str | None = None     # for trackml / acts sources (relative to the YAML file)
    n_train: int = 16
    n_val: int = 2
    n_test: int = 4
    seed: int = 1234                 # simulation seed
    first_event_id: int = 1000
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    # for source: pct; left out of the fingerprint while default (other sources' caches stay valid)
    pct: PCTConfig = field(default_factory=PCTConfig, metadata={"omit_default": True})
    features: list[str] = field(default_factory=lambda: ["r", "phi", "z"])
    feature_scales: list[float] = field(default_factory=lambda: [1000.0, 3.141592653589793, 1000.0])
    regions: dict = field(default_factory=_default_regions)
    transforms: list[dict] = field(default_factory=list)

    def validate(self) -> None:
        known = sorted(GENERATED) + sorted(FORMATS)
        if self.source not in known:
            raise ValueError(f"key 'source': expected one of {', '.join(map(repr, known))}, got {self.source!r}")
        if self.source in FORMATS and not self.input_dir:
            raise ValueError(f"key 'input_dir' is required for source '{self.source}'")
        if min(self.n_train, self.n_val, self.n_test) < 0 or self.n_test < 1:
            raise ValueError("key 'n_test': need n_test >= 1 and non-negative n_train, n_val")
        n = self.n_train + self.n_val + self.n_test
        if self.first_event_id < 0 or self.first_event_id + n > MAX_EVENT_ID + 1:
            # event files are named event<9 digits>: more would not fit the TrackML names
            raise ValueError(f"keys 'first_event_id' + 'n_train' + 'n_val' + 'n_test' = {self.first_event_id + n:,} "
                             f"events: event ids must lie in 0 .. {MAX_EVENT_ID:,}")
        if len(self.features) != len(self.feature_scales):
            raise ValueError("keys 'features' and 'feature_scales' differ in length")
        if any(s == 0 for s in self.feature_scales):
            raise ValueError("key 'feature_scales': a scale is zero")
        for name, vols in self.regions.items():
            if not isinstance(vols, list) or not all(isinstance(v, int) for v in vols):
                raise ValueError(f"key 'regions.{name}': expected a list of volume ids")


PARTICLE_FIELDS = ("pt", "eta", "vx", "vy", "vz", "hard_scatter", "primary")


def hit_table(tables: EventTables) -> pd.DataFrame:
    """One row per hit: hits, truth and the particle's pt, eta, production vertex and origin
    (``hard_scatter``, ``primary``: 1 where the particles table says so, 0 where it has no such
    column).  Without truth (detector data) every hit is noise: particle_id 0, all of these 0."""
    if tables.truth is None:
        df = tables.hits.copy()
        df["particle_id"] = 0
        for col in ("weight", *PARTICLE_FIELDS):
            df[col] = 0.0
    else:
        df = tables.hits.merge(tables.truth, on="hit_id", how="left", validate="one_to_one")
        p = tables.particles
        pinfo = pd.DataFrame({"particle_id": p.particle_id, "pt": np.hypot(p.px, p.py),
                              "vx": p.vx, "vy": p.vy, "vz": p.vz})
        pinfo["eta"] = np.arcsinh(p.pz / np.maximum(pinfo.pt, 1e-9))
        for col in ("hard_scatter", "primary"):
            pinfo[col] = p[col].to_numpy() if col in p.columns else 0
        pinfo = pinfo.drop_duplicates("particle_id")
        df = df.merge(pinfo, on="particle_id", how="left")
        for col in PARTICLE_FIELDS:
            df[col] = df[col].fillna(0.0)
    df["r"] = np.hypot(df.x, df.y)
    df["phi"] = np.arctan2(df.y, df.x)
    df["eta_hit"] = np.arcsinh(df.z / np.maximum(df.r, 1e-9))
    return df


def truth_track_edges(particle_id: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Consecutive hits of each particle, ordered by distance from its production vertex (2, T)."""
    order = np.lexsort((dist, particle_id))
    p = particle_id[order]
    consecutive = (p[1:] == p[:-1]) & (p[1:] != 0)
    return np.stack([order[:-1][consecutive], order[1:][consecutive]])


def region_of(volume_id: np.ndarray, regions: dict, where: str) -> np.ndarray:
    region = np.full(volume_id.shape, -1, dtype=np.int64)
    for idx, vols in enumerate(regions.values()):
        region[np.isin(volume_id, vols)] = idx
    if (region < 0).any():
        bad = int(volume_id[region < 0][0])
        raise DataError(f"{where}: volume_id {bad} belongs to no region in the data config 'regions'")
    return region


def column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A column of the hit table, zeros where the source has none (proton-CT frames)."""
    return df[name].to_numpy() if name in df.columns else np.zeros(len(df))


def build_event(df: pd.DataFrame, cfg: DataConfig, event_id: int, where: str) -> Data:
    """Event graph (nodes, truth graph) from a hit table, in the trkx data model."""
    if len(df) == 0:
        raise DataError(f"{where}: event {event_id} has no hits left after the transforms")
    missing = [c for c in cfg.features if c not in df.columns]
    if missing:
        raise DataError(f"{where}: feature '{missing[0]}' is not a column of the hit table")
    feats = df[cfg.features].to_numpy(dtype=np.float64) / np.asarray(cfg.feature_scales)
    if not np.isfinite(feats).all():
        row = int(np.flatnonzero(~np.isfinite(feats).all(axis=1))[0])
        raise DataError(f"{where}: event {event_id}, hit_id {int(df.hit_id.iloc[row])}: non-finite feature")
    dist = np.sqrt((df.x - df.vx) ** 2 + (df.y - df.vy) ** 2 + (df.z - df.vz) ** 2).to_numpy()
    pid = df.particle_id.to_numpy(dtype=np.int64)
    t = lambda a, dt=torch.float32: torch.as_tensor(np.array(a), dtype=dt)  # noqa: E731  (a writable copy)
    return Data(
        event_id=int(event_id), num_nodes=len(df),
        hit_id=t(df.hit_id.to_numpy(), torch.long), x=t(feats),
        r=t(df.r.to_numpy()), phi=t(df.phi.to_numpy()), z=t(df.z.to_numpy()),
        region=t(region_of(df.volume_id.to_numpy(), cfg.regions, where), torch.long),
        volume_id=t(df.volume_id.to_numpy(), torch.long), layer_id=t(df.layer_id.to_numpy(), torch.long),
        module_id=t(df.module_id.to_numpy(), torch.long),
        particle_id=t(pid, torch.long), pt=t(df.pt.to_numpy()), eta=t(df.eta.to_numpy()),
        weight=t(df.weight.to_numpy()),
        # the particle's origin: from the hard scatter, made by the generator (not the material),
        # and its production radius (mm)
        hard_scatter=t(column(df, "hard_scatter"), torch.bool), primary=t(column(df, "primary"), torch.bool),
        prod_r=t(np.hypot(column(df, "vx"), column(df, "vy"))),
        track_edges=t(truth_track_edges(pid, dist), torch.long),
    )


@register("data")
class EventSource(DataSource):
    """Produces the event graphs of every split from simulation, proton-CT frames or files of a
    registered format (TrackML CSVs, ACTS CSVs: ``trkx.io``)."""
    Config = DataConfig

    def __init__(self, config: DataConfig, **kw):
        super().__init__(config, **kw)
        self.where = str(self.source) if self.source else "data"
        self.base_dir = self.source.parent if self.source else Path.cwd()
        self.transform = build_transforms(config.transforms, self.where)

    def _input_dir(self) -> Path:
        path = Path(self.config.input_dir)
        return path if path.is_absolute() else self.base_dir / path

    def input_digest(self) -> dict | None:
        """What the read events depend on besides the config: for ``trackml`` / ``acts`` sources
        the resolved input directory and a content digest of every file in it (so a changed,
        added or removed file gives a new data fingerprint); None for simulation."""
        if self.config.source in GENERATED:
            return self.generator_digest()
        directory = self._input_dir().resolve()
        if not directory.is_dir():
            raise DataError(f"{directory}: input directory not found")
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
        return {"dir": str(directory), "files": {p.name: file_digest(p) for p in files}}

    def generator_digest(self) -> dict | None:
        """For ``generator: hepmc3``, a content digest of every HepMC3 file the crossings are made
        from (a changed file gives a new data fingerprint); None for generators with no input."""
        sim = self.config.simulation
        if self.config.source != "simulate" or sim.generator != "hepmc3":
            return None
        files = {}
        for name in [*sim.collisions.hepmc3.hard_scatter, *sim.collisions.hepmc3.pileup]:
            path = Path(name) if Path(name).is_absolute() else self.base_dir / name
            if not path.is_file():
                raise DataError(f"{path}: HepMC3 file not found (data config 'simulation.collisions.hepmc3')")
            files[name] = file_digest(path)
        return {"hepmc3": files}

    def extra_metrics(self, hits: pd.DataFrame, eval_cfg) -> dict[str, dict]:
        """Proton-CT frames add the paper's per-frame purity and efficiency (``frame``)."""
        if self.config.source != "pct":
            return {}
        f = frame_purity_efficiency(hits, eval_cfg.min_track_hits)
        return {"frame": {**f, "summary": f"per frame (proton-CT definitions, tracks of >= {f['min_track_hits']} "
                                          f"hits): purity {f['purity']:.4f} ± {f['purity_std']:.4f}, efficiency "
                                          f"{f['efficiency']:.4f} ± {f['efficiency_std']:.4f} over {f['frames']} frames"}}

    def cpp_lines(self) -> list[str]:
        """The C++ tool reads TrackML hits: the features it computes, their scales, the regions."""
        c = self.config
        if c.transforms:
            raise NoCppPort("the data config has transforms")
        if any(f not in CPP_FEATURES for f in c.features):
            raise NoCppPort(f"features other than {', '.join(CPP_FEATURES)}")
        return [f"features {' '.join(c.features)}", f"feature_scales {' '.join(map(repr, c.feature_scales))}",
                *(f"region {i} {' '.join(map(str, vols))}" for i, vols in enumerate(c.regions.values()))]

    def split_sizes(self) -> dict[str, int]:
        c = self.config
        return {"train": c.n_train, "val": c.n_val, "test": c.n_test}

    def split_names(self) -> list[str]:
        """The split of each event, in order."""
        return [s for s, k in self.split_sizes().items() for _ in range(k)]

    def raw_events(self, raw_dir: Path, progress: bool = True) -> tuple[Path, list[int], str]:
        """Make sure raw TrackML-format CSVs exist; returns (directory, event ids, reader kind)."""
        c = self.config
        n = sum(self.split_sizes().values())
        if c.source == "simulate":
            done = raw_dir / ".complete"
            if not done.exists():
                # with a Dask client (trkx run --cluster) every event is a task on its workers
                simulate_events(c.simulation, n, c.seed, raw_dir, c.first_event_id, progress, threads=self.workers,
                                base_dir=self.base_dir, client=getattr(self, "client", None))
                done.write_text("ok\n")
            return raw_dir, list(range(c.first_event_id, c.first_event_id + n)), "trackml"
        directory = self._input_dir()
        ids = FORMATS[c.source].list_events(directory)
        if len(ids) < n:
            raise DataError(f"{directory}: {len(ids)} events found, the data config asks for {n} "
                            f"(n_train + n_val + n_test)")
        return directory, ids[:n], c.source

    def events(self, workdir: Path, progress: bool = True) -> Iterator[tuple[str, int, Data]]:
        """Yield (split, event_id, event graph) for every event; simulated CSVs go to ``workdir / "csv"``."""
        if self.config.source == "pct":
            yield from self.pct_events(workdir / "csv", self.split_names())
            return
        # the input directory is checked to hold enough events before a split list is made
        directory, ids, reader = self.raw_events(workdir / "csv", progress)
        read = FORMATS[reader].read
        for split, event_id in zip(self.split_names(), ids):
            yield split, event_id, self.event_graph(read(directory, event_id), str(directory))

    def pct_events(self, csv_dir: Path, splits: list[str]) -> Iterator[tuple[str, int, Data]]:
        """Proton-CT readout frames (``trkx.stages.data.pct``), one event each; every frame's hit
        table is also written to ``csv_dir`` (``event<ID>-hits.csv``) for inspection."""
        c = self.config
        frames = simulate_frames(c.pct, len(splits), np.random.default_rng(c.seed))
        csv_dir.mkdir(parents=True, exist_ok=True)
        for i, (split, df) in enumerate(zip(splits, frames)):
            event_id = c.first_event_id + i
            df = self.transform(df.assign(r=np.hypot(df.x, df.y), phi=np.arctan2(df.y, df.x)))
            df.to_csv(csv_dir / f"event{event_id:09d}-hits.csv", index=False)
            event = build_event(df, c, event_id, f"{self.where} (pct frame {event_id})")
            event.geometry = "planar"      # layers are planes across the beam: planar edge features
            yield split, event_id, event

    def event_graph(self, tables: EventTables, where: str) -> Data:
        """One event's graph from its tables: hit table, this source's transforms, features."""
        return build_event(self.transform(hit_table(tables)), self.config, tables.event_id, where)
