"""Ariadne-style composable transforms on an event's hit table (one pandas row per hit).

The table holds TrackML hit columns, truth columns (``particle_id``, ``tpx``...), and the particle's
``pt``/``eta``/``vx``/``vy``/``vz``.  Each transform returns a new table; ``Compose`` chains them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from trkx.config import ConfigError, parse_config

TRANSFORMS: dict[str, type] = {}


def _register(cls):
    TRANSFORMS[cls.__name__] = cls
    return cls


def _check_columns(df: pd.DataFrame, columns: list[str], who: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{who}: column '{missing[0]}' not in the hit table")


@_register
@dataclass
class ToCylindrical:
    """Add ``r``, ``phi`` and hit ``eta_hit`` from cartesian x, y, z."""
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["r"] = np.hypot(df.x, df.y)
        df["phi"] = np.arctan2(df.y, df.x)
        df["eta_hit"] = np.arcsinh(df.z / np.maximum(df.r, 1e-9))
        return df


@_register
@dataclass
class ToCartesian:
    """Add cartesian ``x``, ``y`` from ``r`` and ``phi`` (for inputs given in cylindrical coordinates)."""
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["x"] = df.r * np.cos(df.phi)
        df["y"] = df.r * np.sin(df.phi)
        return df


@_register
@dataclass
class StandardScale:
    """Per-event standardisation of columns to zero mean and unit variance."""
    columns: list[str] = field(default_factory=lambda: ["r", "phi", "z"])

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, self.columns, "StandardScale")
        df = df.copy()
        for c in self.columns:
            std = df[c].std(ddof=0)
            df[c] = (df[c] - df[c].mean()) / (std if std > 0 else 1.0)
        return df


@_register
@dataclass
class MinMaxScale:
    """Per-event rescaling of columns to [lo, hi]."""
    columns: list[str] = field(default_factory=lambda: ["r", "phi", "z"])
    lo: float = 0.0
    hi: float = 1.0

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, self.columns, "MinMaxScale")
        df = df.copy()
        for c in self.columns:
            span = df[c].max() - df[c].min()
            df[c] = self.lo + (self.hi - self.lo) * (df[c] - df[c].min()) / (span if span > 0 else 1.0)
        return df


@_register
@dataclass
class Normalize:
    """Divide columns by fixed scales (the same for every event: the usual choice for training)."""
    columns: list[str] = field(default_factory=lambda: ["r", "phi", "z"])
    scales: list[float] = field(default_factory=lambda: [1000.0, np.pi, 1000.0])

    def validate(self) -> None:
        if len(self.columns) != len(self.scales):
            raise ValueError("Normalize: columns and scales differ in length")
        if any(s == 0 for s in self.scales):
            raise ValueError("Normalize: a scale is zero")

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, self.columns, "Normalize")
        df = df.copy()
        for c, s in zip(self.columns, self.scales):
            df[c] = df[c] / s
        return df


@_register
@dataclass
class DropFakes:
    """Drop noise hits (particle_id == 0)."""
    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        return df[df.particle_id != 0].reset_index(drop=True)


@_register
@dataclass
class DropShort:
    """Drop hits of particles that leave fewer than ``min_hits`` hits (noise kept)."""
    min_hits: int = 3

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        counts = df.groupby("particle_id")["particle_id"].transform("size")
        keep = (df.particle_id == 0) | (counts >= self.min_hits)
        return df[keep].reset_index(drop=True)


@_register
@dataclass
class DropSpinningTracks:
    """Drop loopers: particles that move inwards (negative radial momentum) at any of their hits."""
    tolerance: float = 0.0  # GeV; radial momentum below -tolerance counts as inward

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, ["tpx", "tpy"], "DropSpinningTracks")
        radial_p = (df.x * df.tpx + df.y * df.tpy) / np.maximum(np.hypot(df.x, df.y), 1e-9)
        inward = (radial_p < -self.tolerance) & (df.particle_id != 0)
        spinning = df.particle_id[inward].unique()
        return df[~df.particle_id.isin(spinning)].reset_index(drop=True)


@_register
@dataclass
class PtCut:
    """Drop hits of particles below ``min_pt`` GeV (noise kept unless ``drop_noise``)."""
    min_pt: float = 1.0
    drop_noise: bool = False

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        keep = (df.pt >= self.min_pt) | ((df.particle_id == 0) & (not self.drop_noise))
        return df[keep].reset_index(drop=True)


@_register
@dataclass
class ConstraintsNormalize:
    """Rescale columns to [-1, 1] by the detector's known extents (Ariadne's transform): the same
    mapping for every event, unlike ``MinMaxScale``'s per-event one.  ``constraints`` gives
    [min, max] per column; a hit outside them is an error (it cannot be in the detector)."""
    columns: list[str] = field(default_factory=lambda: ["x", "y", "z"])
    constraints: dict[str, list[float]] = field(default_factory=lambda: {"x": [-1100.0, 1100.0], "y": [-1100.0, 1100.0],
                                                                        "z": [-3100.0, 3100.0]})

    def validate(self) -> None:
        for c in self.columns:
            lim = self.constraints.get(c)
            if lim is None or len(lim) != 2 or not lim[0] < lim[1]:
                raise ValueError(f"ConstraintsNormalize: constraints['{c}'] must be [min, max] with min < max")

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, self.columns, "ConstraintsNormalize")
        df = df.copy()
        for c in self.columns:
            lo, hi = self.constraints[c]
            outside = (df[c] < lo) | (df[c] > hi)
            if outside.any():
                row = int(np.flatnonzero(outside.to_numpy())[0])
                raise ValueError(f"ConstraintsNormalize: row {row}: {c} = {df[c].iloc[row]} outside the constraints [{lo}, {hi}]")
            df[c] = constraints_normalize(df[c].to_numpy(), lo, hi)
        return df


def constraints_normalize(values, lo: float, hi: float):
    """``values`` mapped linearly from [lo, hi] to [-1, 1] (numpy arrays or torch tensors)."""
    return 2.0 * (values - lo) / (hi - lo) - 1.0


@_register
@dataclass
class ToBuckets:
    """Group the hits by the length of their track (Ariadne's transform, for batching tracks of one
    length together): adds ``bucket``, the number of hits of the hit's particle (capped at
    ``max_length``; 0 for noise), and orders the rows by bucket, then particle (a stable sort:
    each particle's hits keep their order).  Particles shorter than ``min_length`` are dropped."""
    min_length: int = 1
    max_length: int = 0         # 0: no cap

    def validate(self) -> None:
        if self.min_length < 1 or self.max_length < 0 or (self.max_length and self.max_length < self.min_length):
            raise ValueError("ToBuckets: need min_length >= 1 and max_length 0 or >= min_length")

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        _check_columns(df, ["particle_id"], "ToBuckets")
        length = df.groupby("particle_id")["particle_id"].transform("size").to_numpy()
        noise = (df.particle_id == 0).to_numpy()
        df = df[noise | (length >= self.min_length)].copy()
        length = length[noise | (length >= self.min_length)]
        bucket = np.where(df.particle_id.to_numpy() == 0, 0, length)
        df["bucket"] = np.minimum(bucket, self.max_length) if self.max_length else bucket
        return df.sort_values(["bucket", "particle_id"], kind="stable").reset_index(drop=True)


def length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Batches of item indices, each of one length (``ToBuckets``'s grouping for tensors): items
    of equal length in batches of at most ``batch_size``, shuffled by ``rng`` when given."""
    out = []
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        if rng is not None:
            idx = rng.permutation(idx)
        out.extend(np.array_split(idx, max(1, -(-idx.size // batch_size))))
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: list[Callable[[pd.DataFrame], pd.DataFrame]]):
        self.transforms = list(transforms)

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        for t in self.transforms:
            df = t(df)
        return df

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def build_transforms(specs: list[dict], where: str) -> Compose:
    """``[{"name": "PtCut", "min_pt": 1.0}, ...]`` from YAML into a Compose."""
    out = []
    for i, spec in enumerate(specs):
        spec = dict(spec)
        name = spec.pop("name", None)
        if name not in TRANSFORMS:
            raise ConfigError(f"{where}: key 'transforms[{i}].name': unknown transform {name!r} "
                              f"(known: {', '.join(sorted(TRANSFORMS))})")
        out.append(parse_config(TRANSFORMS[name], spec, where, prefix=f"transforms[{i}]."))
    return Compose(out)
