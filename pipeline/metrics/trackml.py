"""The TrackML challenge score (written from the challenge's definition; the LAL library is not on PyPI).

A reconstructed track is matched to its majority particle (most shared hits; ties go to the smaller
particle id) when more than half of the track's hits belong to that particle and more than half of
the particle's hits are in the track.  The score is the summed weight of the shared hits of matched
tracks; with TrackML weights (summing to one per event) a perfect submission scores 1.
"""
from __future__ import annotations

import pandas as pd


def trackml_score(truth: pd.DataFrame, submission: pd.DataFrame) -> float:
    """``truth``: hit_id, particle_id, weight; ``submission``: hit_id, track_id (every hit once;
    track_id -1 marks an unassigned hit)."""
    for name, df, cols in (("truth", truth, ["hit_id", "particle_id", "weight"]),
                           ("submission", submission, ["hit_id", "track_id"])):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"trackml_score: {name} lacks column '{missing[0]}'")
    if submission.hit_id.duplicated().any():
        raise ValueError("trackml_score: a hit_id appears twice in the submission")
    df = truth[["hit_id", "particle_id", "weight"]].merge(submission[["hit_id", "track_id"]], on="hit_id",
                                                          how="left", validate="one_to_one")
    if df.track_id.isna().any():
        raise ValueError(f"trackml_score: hit_id {int(df.hit_id[df.track_id.isna()].iloc[0])} missing from the submission")
    df = df[df.track_id >= 0]
    if df.empty:
        return 0.0
    particle_hits = truth.groupby("particle_id").size()
    pairs = df.groupby(["track_id", "particle_id"]).agg(n=("hit_id", "size"), w=("weight", "sum")).reset_index()
    track_size = df.groupby("track_id").size()
    # majority particle: most shared hits, ties towards the smaller particle id
    pairs = pairs.sort_values(["track_id", "n", "particle_id"], ascending=[True, False, True])
    major = pairs.drop_duplicates("track_id")
    n_track = track_size.reindex(major.track_id).to_numpy()
    n_part = particle_hits.reindex(major.particle_id).to_numpy()
    good = (2 * major.n.to_numpy() > n_track) & (2 * major.n.to_numpy() > n_part)
    return float(major.w.to_numpy()[good].sum())
