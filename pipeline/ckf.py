"""Classical baseline: ACTS grid-triplet seeding + combinatorial Kalman filter on the pipeline's test
events, converted to trkx track files so that both methods are scored by the same metrics code.

The events are re-simulated by ACTS with the data config's seed; ACTS draws each event's random
numbers from (seed, event number), so skipping to the test events reproduces exactly the hits the
pipeline read (checked hit by hit before any track is written)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.data import Data

from trkx.errors import DataError
from trkx.simulation import SimulationConfig, run_acts

# pixel layers used for seeding in the generic detector (barrel 8, endcaps 7 and 9)
SEEDING_LAYERS = ([{"volume": 8, "layer": l} for l in (2, 4, 6, 8)]
                  + [{"volume": 9, "layer": l} for l in (2, 4, 6, 8)]
                  + [{"volume": 7, "layer": l} for l in (8, 10, 12, 14)])
RECO_ALGORITHMS = ("SpacePointMaker", "GridTripletSeedingAlgorithm", "TrackParamsEstimationAlgorithm",
                   "SeedsToProtoTracks", "SeedsToTracks", "TrackFindingAlgorithm",
                   "GreedyAmbiguityResolutionAlgorithm")
TRACKS_CSV = "event{:09d}-tracks_ambi.csv"


def run_ckf(cfg: SimulationConfig, seed: int, first_index: int, n_events: int, out_dir: Path,
            min_pt: float = 0.5, min_measurements: int = 7, base_dir: Path | None = None,
            progress: bool = False, eta_max: float = 4.0) -> dict:
    """Simulate (as the data stage did) and reconstruct events ``first_index ..`` with seeding, CKF
    and greedy ambiguity resolution, single thread, as ACTS's full-chain example
    (Examples/Scripts/Python/full_chain_test.py) configures them for the generic detector.  Writes
    ACTS CSVs to ``out_dir`` (tracks in ``ckf/``); returns per-algorithm seconds per event.

    The tracks are written by a CsvTrackWriter of our own with ``ptMin`` at ``min_pt``: the writer
    ``addCKFTracks`` adds keeps only tracks above its default ``ptMin`` of 1 GeV, which made the
    baseline look blind below 1 GeV although seeding and CKF found those tracks."""
    import acts
    import acts.examples
    from acts.examples.reconstruction import (AmbiguityResolutionConfig, CkfConfig, SeedFinderConfigArg,
                                              SeedFinderOptionsArg, SeedingAlgorithm, TrackSelectorConfig,
                                              addAmbiguityResolution, addCKFTracks, addSeeding)
    from acts.examples.simulation import ParticleSelectorConfig, addDigiParticleSelection

    u = acts.UnitConstants
    quiet = acts.logging.WARNING
    out_dir.mkdir(parents=True, exist_ok=True)
    geosel = out_dir / "seeding-layers.json"
    geosel.write_text(json.dumps(SEEDING_LAYERS))

    def add_reconstruction(seq, geometry, field):
        addDigiParticleSelection(seq, ParticleSelectorConfig(pt=(min_pt * u.GeV, None),
                                                             measurements=(min_measurements, None),
                                                             removeNeutral=True))
        addSeeding(
            seq, geometry, field,
            SeedFinderConfigArg(r=(None, 200 * u.mm), deltaR=(1 * u.mm, 300 * u.mm),
                                collisionRegion=(-250 * u.mm, 250 * u.mm), z=(-2000 * u.mm, 2000 * u.mm),
                                maxSeedsPerSpM=1, sigmaScattering=5, radLengthPerSeed=0.1,
                                minPt=min_pt * u.GeV, impactMax=3 * u.mm, cotThetaMax=math.sinh(eta_max)),
            SeedFinderOptionsArg(bFieldInZ=cfg.bfield_tesla * u.T, beamPos=(0.0, 0.0)),
            seedingAlgorithm=SeedingAlgorithm.GridTriplet,
            initialSigmas=[1 * u.mm, 1 * u.mm, 1 * u.degree, 1 * u.degree, 0 * u.e / u.GeV, 1 * u.ns],
            initialSigmaQoverPt=0.1 * u.e / u.GeV, initialSigmaPtRel=0.1, initialVarInflation=[1.0] * 6,
            geoSelectionConfigFile=str(geosel), logLevel=quiet)
        addCKFTracks(
            seq, geometry, field,
            TrackSelectorConfig(pt=(min_pt * u.GeV, None), absEta=(None, eta_max), loc0=(-4.0 * u.mm, 4.0 * u.mm),
                                nMeasurementsMin=min_measurements, maxHoles=2, maxOutliers=2),
            CkfConfig(chi2CutOffMeasurement=15.0, chi2CutOffOutlier=25.0, numMeasurementsCutOff=2,
                      seedDeduplication=True, stayOnSeed=True),
            writeTrackSummary=False, writePerformance=False, logLevel=quiet)
        addAmbiguityResolution(
            seq, AmbiguityResolutionConfig(maximumSharedHits=3, maximumIterations=1000000,
                                           nMeasurementsMin=min_measurements),
            writeTrackSummary=False, writePerformance=False, logLevel=quiet)
        (out_dir / "ckf").mkdir(exist_ok=True)
        seq.addWriter(acts.examples.CsvTrackWriter(
            level=quiet, inputTracks="ambi_tracks", inputMeasurementParticlesMap="measurement_particles_map",
            outputDir=str(out_dir / "ckf"), fileName="tracks_ambi.csv", ptMin=min_pt * u.GeV,
            nMeasurementsMin=min_measurements))

    run_acts(cfg, n_events, seed, out_dir, skip=first_index, extend=add_reconstruction, base_dir=base_dir,
             progress=progress)
    timing = pd.read_csv(out_dir / "timing.csv")
    per_alg = {row.identifier.split(":", 1)[1]: float(row.time_perevent_s) for row in timing.itertuples()
               if row.identifier.split(":", 1)[1] in RECO_ALGORITHMS}
    return per_alg


def ckf_track_labels(tracks_csv: Path, hit_ids: np.ndarray) -> np.ndarray:
    """track_id per hit from an ACTS tracks CSV; a hit on several tracks goes to the best track
    (more measurements, then smaller chi2/ndf); hits on no track get -1."""
    tracks = pd.read_csv(tracks_csv)
    labels = np.full(hit_ids.shape, -1, dtype=np.int64)
    if tracks.empty:
        return labels
    meas = tracks["Measurements_ID"].str.strip("[]").str.rstrip(",").str.split(",")
    rows = pd.DataFrame({"track": tracks.track_id.repeat(meas.str.len()).to_numpy(),
                         "nmeas": tracks.nMeasurements.repeat(meas.str.len()).to_numpy(),
                         "chi2ndf": tracks["chi2/ndf"].repeat(meas.str.len()).to_numpy(),
                         "hit_id": np.concatenate(meas.to_list()).astype(np.int64) + 1})
    rows = rows.sort_values(["nmeas", "chi2ndf", "track"], ascending=[False, True, True])
    rows = rows.drop_duplicates("hit_id")
    pos = pd.Series(np.arange(hit_ids.size), index=hit_ids)
    labels[pos.reindex(rows.hit_id).to_numpy()] = rows.track.to_numpy()
    return labels


def check_same_hits(acts_dir: Path, acts_index: int, event: Data, where: str, tolerance_mm: float = 0.01) -> None:
    """The re-simulated measurements must be the pipeline's hits (its cached event graph), hit by
    hit: same ids, positions within ``tolerance_mm`` (the graph stores r, phi, z in float32)."""
    meas = pd.read_csv(acts_dir / f"event{acts_index:09d}-measurements.csv")
    ids = meas.measurement_id.to_numpy() + 1
    hit_id = event.hit_id.numpy()
    if len(ids) != len(hit_id) or not np.isin(ids, hit_id).all():
        raise DataError(f"{where}: the re-simulated event {acts_index} has other hits than the pipeline's")
    row = pd.Series(np.arange(hit_id.size), index=hit_id).loc[ids].to_numpy()
    r, phi, z = (event[k].numpy().astype(np.float64)[row] for k in ("r", "phi", "z"))
    mine = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    diff = np.abs(meas[["global_x", "global_y", "global_z"]].to_numpy() - mine)
    if diff.max() > tolerance_mm:
        raise DataError(f"{where}: the re-simulated event {acts_index} differs from the pipeline's hits "
                        f"by up to {diff.max():.3g} mm (a data transform that rescales r, phi or z "
                        f"changes the cached positions)")
