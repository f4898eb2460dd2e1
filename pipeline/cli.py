"""The ``trkx`` command line: simulate, run, train, infer, eval, bench."""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import click

from trkx.errors import ConfigError


def _friendly(fn):
    """Turn the errors users cause (configs, data, cache files, a full or read-only disk) into one
    line and exit status 2; Ctrl-C into one line saying where it stopped, exit status 130."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from trkx.errors import DataError
        from trkx.storage import CorruptEntryError, os_error_line
        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataError, CorruptEntryError, FileNotFoundError) as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except OSError as err:          # no space, read-only file system, permissions
            click.echo(f"error: {os_error_line(err)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as err:
            # a training says where it stopped; elsewhere every finished cache entry is kept
            said = str(err) if str(err) else "interrupted; finished cache entries are kept, the same command goes on"
            click.echo(f"\n{said}", err=True)
            sys.exit(130)
    return wrapper


# many events on many machines (trkx.cluster), for run and reco alike
_cluster_option = click.option(
    "--cluster", default=None, metavar="ADDRESS|local:N",
    help="Run every event as a Dask task: on a running dask.distributed scheduler (tcp://host:8786) or on a "
         "local cluster of N worker processes (local:N). The cache and inputs must be on a shared file system.")

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trkx")
def main():
    """trkx: GNN track reconstruction, one stage per role, chained by a pipeline YAML.

    \b
    Roles, in chain order (checked when a pipeline loads):
      data source          events and truth
      embedding            latent hit coordinates
      graph construction   edge_index
      edge classification  a score per edge
      track building       track_id per hit (last)
    `trkx stages` lists the stages of each role.

    Every stage has its own YAML (configs/stages/*.yaml); a pipeline YAML names the data
    source and the stages in order (configs/pipeline.yaml).  Intermediate event graphs are
    cached per stage under the pipeline's workdir, keyed by config, upstream, weights and
    input files; every stage's inference is timed."""
    from trkx.runtime import keep_freed_memory
    keep_freed_memory()


@main.command(name="stages")
def stages_():
    """List the registered stages by role (the YAML `stage:` names)."""
    from trkx.runner import ROLE_WORDS
    from trkx.stage import registered_stages
    for role, words in ROLE_WORDS.items():
        click.echo(f"{words}:")
        for name, cls in sorted(registered_stages().items()):
            if cls.role == role:
                doc = (cls.__doc__ or "").strip().splitlines()
                click.echo(f"  {name:<18} {doc[0] if doc else ''}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--events", "-n", default=10, show_default=True, help="Number of events.")
@click.option("--vertices", default=5, show_default=True, help="Vertices (pileup-like) per event.")
@click.option("--particles", default=40, show_default=True, help="Particles per vertex.")
@click.option("--pt-min", default=0.5, show_default=True, help="Minimum transverse momentum [GeV].")
@click.option("--pt-max", default=10.0, show_default=True, help="Maximum transverse momentum [GeV].")
@click.option("--eta", default=2.5, show_default=True, help="Generate |eta| below this.")
@click.option("--pdg", default=13, show_default=True, help="PDG id of the gun particles.")
@click.option("--pythia", type=click.Choice(["ttbar", "zmumu", "none"]), default=None,
              help="Pythia 8 collisions with this hard process instead of the gun ('none': minimum bias).")
@click.option("--pileup", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="With --pythia: mean number of pile-up collisions per event (<mu>).")
@click.option("--seed", default=1234, show_default=True, help="Random seed.")
@click.option("--first-event-id", default=1000, show_default=True)
@click.option("--overwrite", is_flag=True, help="Write into OUT_DIR even if it holds files of something else "
              "(event files of the same names are replaced).")
@_cluster_option
@_friendly
def simulate(out_dir, events, vertices, particles, pt_min, pt_max, eta, pdg, pythia, pileup, seed, first_event_id,
             overwrite, cluster):
    """Simulate events with ACTS (generic detector, Fatras, smearing) into TrackML CSVs: a particle
    gun, or Pythia 8 collisions with pile-up (--pythia).  OUT_DIR must be new, empty or an earlier
    `trkx simulate` output."""
    from trkx.config import parse_config
    from trkx.outdir import SIMULATE_MARKER, check_output_dir
    from trkx.simulation import SimulationConfig, simulate_events
    from trkx.storage import write_json
    check_output_dir(out_dir, "simulate output", lambda d: (d / SIMULATE_MARKER).is_file(), overwrite)

    if pythia is not None:
        keys = {"generator": "pythia8", "collisions": {"hard_process": pythia, "pileup": pileup}}
    else:
        keys = {"n_vertices": vertices, "particles_per_vertex": particles, "pt_min": pt_min, "pt_max": pt_max,
                "eta_min": -eta, "eta_max": eta, "pdg": pdg}
    cfg = parse_config(SimulationConfig, keys, "trkx simulate")
    t0 = time.perf_counter()
    from trkx.cluster import open_cluster
    with open_cluster(cluster, note=click.echo) as client:
        ids = simulate_events(cfg, events, seed, out_dir, first_event_id, client=client)
    write_json(out_dir / SIMULATE_MARKER, {"kind": "simulate", "events": ids})
    click.echo(f"wrote {len(ids)} events (TrackML CSV) to {out_dir} in {time.perf_counter() - t0:.1f} s")


# where the tracks go (trkx.io.tracks), for run and reco alike
_track_format_option = click.option(
    "--format", "track_format", type=click.Choice(["csv", "parquet", "root"]), default="csv", show_default=True,
    help="Track files: TrackML CSV, Parquet or a ROOT TTree (uproot).")


def _print_run_summary(pipe, outputs, seconds):
    from trkx.evaluate import evaluate, headline
    for o in outputs:
        click.echo(f"  {o.name:<12} {o.fingerprint}  computed {o.computed:>4}  cached {o.cached:>4}")
    click.echo("\nStage timing (inference, test events):")
    click.echo(pipe.timing_report())
    metrics = evaluate(pipe, outputs)
    from trkx.report import write_report
    report = write_report(pipe.workdir)
    click.echo("\n" + headline(metrics))
    click.echo(f"report: {report}")
    click.echo(f"\nwall time {seconds:.1f} s; outputs in {pipe.workdir} (tracks/, metrics.json, timing.json)")


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", "-f", multiple=True, metavar="STAGE",
              help="Recompute STAGE and every stage after it ('all' for everything). Repeatable.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--workers", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Processes for per-event inference (forked on this machine) and threads for the ACTS simulation.")
@_track_format_option
@_cluster_option
@_friendly
def run(pipeline, force, no_progress, workers, track_format, cluster):
    """Run the whole chain: data -> stages -> tracks/event<ID>.csv (or .parquet, .root), metrics.json,
    timing.json."""
    from trkx.runner import run_pipeline
    pipe, outputs, seconds = run_pipeline(pipeline, force=force, progress=False if no_progress else None,
                                          workers=workers, track_format=track_format, cluster=cluster)
    _print_run_summary(pipe, outputs, seconds)


def _stage_in_pipeline(pipe, stage_yaml: Path):
    return pipe.stage_for(stage_yaml)


@main.command()
@click.argument("stage_yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pipeline", "-p", default="configs/pipeline.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Pipeline that provides the upstream data.")
@click.option("--resume", is_flag=True, help="Go on from the stage's last checkpoint (an interrupted training) "
              "instead of starting over.")
@_friendly
def train(stage_yaml, pipeline, resume):
    """Train one stage (its upstream stages run from cache or are computed first).  Lightning
    logs go to <workdir>/<stage>/logs, checkpoints next to the weights."""
    from trkx.runner import Pipeline
    pipe = Pipeline(pipeline)
    stage = _stage_in_pipeline(pipe, stage_yaml)
    if not stage.trainable:
        raise ConfigError(f"{stage_yaml}: stage '{stage.name}' has nothing to train")
    t0 = time.perf_counter()
    weights = pipe.train_stage(stage, pipe.upstream_of(stage), force=True, resume=resume)
    click.echo(f"trained {stage.name} in {time.perf_counter() - t0:.1f} s -> {weights}")
    report = weights.parent / "train.json"
    if report.exists():
        click.echo(report.read_text())


@main.command()
@click.argument("stage_yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pipeline", "-p", default="configs/pipeline.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Pipeline that provides the events.")
@click.option("--space", "-s", "space_yaml", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML with the search space (see configs/tune/gnn.yaml).")
@click.option("--trials", "-n", default=10, show_default=True, type=click.IntRange(min=1))
@_friendly
def tune(stage_yaml, pipeline, space_yaml, trials):
    """Search one learned stage's hyperparameters with Optuna; writes the best stage YAML, a table
    and a plot of the objective against trial to <workdir>/tune/<stage>/."""
    from trkx.tune import tune as run_tune
    result = run_tune(stage_yaml, pipeline, space_yaml, trials, progress=sys.stderr.isatty())
    click.echo(result.summary.read_text())
    click.echo(f"best {result.best_value:.4f} with {result.best_params}\n-> {result.best_yaml}\n-> {result.plot}")


@main.command()
@click.argument("stage_yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pipeline", "-p", default="configs/pipeline.yaml", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Recompute this stage's outputs even if cached.")
@_friendly
def infer(stage_yaml, pipeline, force):
    """Run inference of one stage over every event (upstream from cache); prints where they are."""
    from trkx.runner import Pipeline
    pipe = Pipeline(pipeline)
    stage = _stage_in_pipeline(pipe, stage_yaml)
    outputs = pipe.run(until=stage.name, force=[stage.name] if force else (), write_outputs=False)
    out = outputs[-1]
    click.echo(f"{stage.name}: {out.computed} events computed, {out.cached} cached -> "
               f"{pipe.cachedir / stage.name / out.fingerprint}")


@main.command(name="eval")
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@_friendly
def eval_(pipeline):
    """Evaluate a pipeline (running anything not yet cached) and write metrics.json."""
    from trkx.evaluate import evaluate, headline
    from trkx.runner import Pipeline
    pipe = Pipeline(pipeline)
    outputs = pipe.run()
    metrics = evaluate(pipe, outputs)
    from trkx.provenance import provenance_text
    from trkx.report import write_report
    report = write_report(pipe.workdir)
    click.echo(headline(metrics))
    click.echo("\n" + provenance_text(metrics["provenance"]))
    click.echo(f"\nwrote {pipe.workdir / 'metrics.json'} and {report}")


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--repeats", "-r", default=3, show_default=True, help="Inference passes over the test events.")
@click.option("--graph-building", is_flag=True,
              help="Instead: time the FRNN backends on the pipeline's embedded test events "
                   "(use configs/benchmark_metric_learning.yaml for the dense benchmark events).")
@click.option("--scaling", is_flag=True,
              help="With --graph-building: also time growing point sets (20k-hit subsample up to all test "
                   "events overlaid) and plot seconds against hits.")
@_friendly
def bench(pipeline, repeats, graph_building, scaling):
    """Stage-timing benchmark: every stage's inference on the test events (mean ± std), with each
    stage's alternatives side by side (graph backends, SciPy vs cuGraph, precision) and ratios.
    Writes bench.json and bench.md in the workdir."""
    from trkx import bench as b
    if graph_building:
        click.echo(b.run_graph_building(pipeline, repeats=max(repeats, 3), scaling=scaling))
        return
    res = b.stage_benchmark(pipeline, repeats)
    click.echo(b.bench_markdown(res))


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR even if it is not an earlier bundle (never the "
              "current directory or one holding the pipeline's workdir or cache).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads the compiled networks are written for (default: torch's choice); run "
                   "the bundle (`trkx reco --threads`, the C++ tool's --threads) with the same count.")
@_friendly
def export(pipeline, out_dir, overwrite, threads):
    """Export a trained pipeline as a self-contained bundle: configs, weights, TorchScript
    networks (for C++), the chain for the C++ tool and a manifest with each file's sha256.
    OUT_DIR must be new, empty or an earlier bundle.  Trains nothing."""
    from trkx.bundle import export_bundle
    if threads:
        import torch
        torch.set_num_threads(threads)
    manifest = export_bundle(pipeline, out_dir, overwrite=overwrite)
    cpp = manifest["cpp"]
    click.echo(f"wrote {out_dir} ({len(manifest['stages'])} stages; C++ tool: "
               f"{'supported' if cpp['supported'] else 'not supported, ' + cpp['reason']})")


@main.command(name="provenance")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the block as JSON.")
@_friendly
def provenance_(file, as_json):
    """Print where a JSON result came from (metrics.json, timing.json, bench.json, comparison.json,
    train.json, study.json, a bundle's manifest.json): trkx version and commit, pipeline and stage
    fingerprints, package versions, machine and date."""
    import json

    from trkx.provenance import provenance_text
    from trkx.storage import read_json
    data = read_json(file, "JSON file")
    block = data.get("provenance") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not block:
        raise ConfigError(f"{file}: no provenance block (written by a trkx older than provenance, or not by trkx)")
    click.echo(json.dumps(block, indent=2) if as_json else provenance_text(block))


@main.command()
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@_friendly
def verify(bundle):
    """Check an exported bundle without running it: manifest, every file's sha256, paths inside the
    bundle, weights that load safely and the chain of fingerprints (what `trkx reco` checks on
    load; run it before handing a bundle to the C++ tool, which does not)."""
    from trkx.bundle import load_bundle
    chain = load_bundle(bundle, exported=True)
    click.echo(f"{bundle}: ok ({len(chain.stages)} stages: {', '.join(s.name for s in chain.stages)})")


@main.command()
@click.argument("chain", type=click.Path(exists=True, path_type=Path))
@click.argument("input_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--eager", is_flag=True, help="With a bundle: run the networks from its weights, not its exported ones (TorchScript, compiled packages).")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--overwrite", is_flag=True, help="Write into OUT_DIR even if it holds files of something else.")
@_track_format_option
@_cluster_option
@_friendly
def reco(chain, input_dir, out_dir, eager, threads, no_progress, overwrite, track_format, cluster):
    """Reconstruct new events with a trained chain (a pipeline YAML, using its cached weights, or an
    exported bundle): TrackML hits (truth optional) or ACTS measurements in INPUT_DIR ->
    OUT_DIR/event<ID>.csv (or .parquet, .root), timing.json and, with truth, metrics.json.  OUT_DIR must be new, empty or
    an earlier reco output (its files for events no longer in INPUT_DIR are removed).  Never trains."""
    import torch
    from trkx.cluster import open_cluster, throughput_line
    from trkx.reco import load_chain, reconstruct
    if threads:
        torch.set_num_threads(threads)
    loaded, throughput = load_chain(chain, exported=not eager), {}
    with open_cluster(cluster, note=click.echo) as client:
        result = reconstruct(loaded, input_dir, out_dir, progress=False if no_progress else None, overwrite=overwrite,
                             track_format=track_format, client=client, throughput=throughput)
    click.echo(f"{result['events']} events -> {out_dir}\n\n{result['table']}")
    if throughput:
        click.echo(throughput_line("reco", throughput))
    m = result["metrics"]
    if m is not None:
        click.echo(f"\ntrack efficiency: {m['track_efficiency']:.4f}   fake rate: {m['fake_rate']:.4f}   "
                   f"duplicate rate: {m['duplicate_rate']:.4f}   TrackML score: {m['trackml_score']:.4f}")


@main.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.argument("event", type=int, required=False)
@click.option("--max-edges", default=50_000, show_default=True, type=click.IntRange(min=0),
              help="Draw at most this many of the graph's edges (a seeded sample).")
@_friendly
def display(target, event, max_edges):
    """Event display of test EVENT (default: the first) of a run: TARGET is its workdir (e.g.
    runs/default) or its pipeline YAML.  Writes <workdir>/display/event<ID>.html (plotly: x-y, r-z,
    3D, edges by score; fakes, split tracks and missed particles marked) and a PNG of the same
    views, shown in report.md."""
    from trkx.display import display_event
    result = display_event(target, event, max_edges, progress=sys.stderr.isatty())
    c = result["counts"]
    click.echo(f"event {result['event']}: {c['hits']} hits, {c['tracks']} tracks ({c['matched']} matched, "
               f"{c['split']} split, {c['fake']} fake), {c['missed']} missed target particles, {c['edges']} edges"
               f"\n-> {result['html']}\n-> {result['png']}")


@main.group()
def baseline():
    """Classical baselines on the pipeline's own test events."""


@baseline.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@_friendly
def ckf(pipeline):
    """ACTS grid-triplet seeding + combinatorial Kalman filter on the pipeline's test events
    (re-simulated identically), written as tracks/event<ID>.csv under <workdir>/baseline_ckf and
    scored with the same metrics as the GNN; prints the comparison (one thread for both)."""
    from trkx.baseline import comparison_markdown, run_ckf_baseline
    click.echo(comparison_markdown(run_ckf_baseline(pipeline)))


@main.group()
def analyze():
    """Look inside a trained stage (Kortus et al.): Hessian spectrum, loss surfaces, mode
    connectivity, representation similarity.  Results go to <workdir>/analysis/<stage>/."""


def _analysis_options(fn):
    fn = click.option("--events", "-n", default=2, show_default=True, type=click.IntRange(min=1),
                      help="Validation events the loss is taken over.")(fn)
    fn = click.option("--pipeline", "-p", default="configs/pipeline.yaml", show_default=True,
                      type=click.Path(dir_okay=False, path_type=Path))(fn)
    return click.argument("stage_yaml", type=click.Path(dir_okay=False, path_type=Path))(fn)


def _show(result) -> None:
    click.echo(result.summary)
    click.echo(f"{'(cached) ' if result.cached else ''}-> {result.folder}")


def _note(line: str) -> None:
    click.echo(line, err=True)


@analyze.command(name="hessian")
@_analysis_options
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1))
@click.option("--iterations", default=50, show_default=True, type=click.IntRange(min=1), help="Power iterations per eigenvalue.")
@click.option("--trace-samples", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--slq-vectors", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--slq-steps", default=20, show_default=True, type=click.IntRange(min=2))
@click.option("--hvp", type=click.Choice(["auto", "differences"]), default="auto", show_default=True,
              help="Hessian-vector products by double back-propagation where possible, or by central "
              "differences of gradients (sees the blackbox solver's surrogate gradient change).")
@_friendly
def analyze_hessian(stage_yaml, pipeline, events, top_k, iterations, trace_samples, slq_vectors, slq_steps, hvp):
    """Top eigenvalues, trace and eigenvalue density of the loss's Hessian at the trained weights."""
    from trkx.analysis.commands import run_hessian
    from trkx.analysis.target import load_target
    _show(run_hessian(load_target(pipeline, stage_yaml, events), top_k, iterations, trace_samples, slq_vectors,
                      slq_steps, hvp=hvp, note=_note))


@analyze.command(name="surface")
@_analysis_options
@click.option("--directions", type=click.Choice(["hessian", "random"]), default="hessian", show_default=True,
              help="Top two Hessian eigenvectors, or two filter-normalised random directions.")
@click.option("--points", default=11, show_default=True, type=click.IntRange(min=3), help="Grid points per axis.")
@click.option("--extent", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@_friendly
def analyze_surface(stage_yaml, pipeline, events, directions, points, extent):
    """Loss, Hamming loss and TPR on a 2D grid (and 1D cuts) around the trained weights."""
    from trkx.analysis.commands import run_surface
    from trkx.analysis.target import load_target
    _show(run_surface(load_target(pipeline, stage_yaml, events), directions, points, extent, note=_note))


@analyze.command(name="connect")
@_analysis_options
@click.option("--seed-b", type=int, default=None, help="Seed of the second training (default: the stage's + 1000).")
@click.option("--bezier-steps", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--points", default=11, show_default=True, type=click.IntRange(min=2), help="Points along each path.")
@click.option("--bezier-loss", type=click.Choice(["stage", "bce"]), default="stage", show_default=True,
              help="Train the Bézier curve on the stage's own loss or on the edge BCE.")
@_friendly
def analyze_connect(stage_yaml, pipeline, events, seed_b, bezier_steps, lr, points, bezier_loss):
    """Straight line and trained Bézier curve between two trainings of the stage (other seeds)."""
    from trkx.analysis.commands import run_connect
    from trkx.analysis.target import load_target
    a = load_target(pipeline, stage_yaml, events)
    b = load_target(pipeline, stage_yaml, events, seed=a.stage.seed + 1000 if seed_b is None else seed_b)
    _show(run_connect(a, b, bezier_steps, lr, points, bezier_loss=bezier_loss, note=_note))


@analyze.command(name="similarity")
@_analysis_options
@click.option("--seed-b", type=int, default=None, help="Compare with the stage trained with this seed "
              "(default: the stage's + 1000).")
@click.option("--other-pipeline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare with a stage of another pipeline instead (with --other-stage).")
@click.option("--other-stage", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_friendly
def analyze_similarity(stage_yaml, pipeline, events, seed_b, other_pipeline, other_stage):
    """Linear CKA between the layers of two models on the same events, and their disagreement."""
    from trkx.analysis.commands import run_similarity
    from trkx.analysis.target import load_target
    a = load_target(pipeline, stage_yaml, events)
    if (other_pipeline is None) != (other_stage is None):
        raise ConfigError("--other-pipeline and --other-stage go together")
    if other_pipeline is not None:
        b = load_target(other_pipeline, other_stage, events)
    else:
        b = load_target(pipeline, stage_yaml, events, seed=a.stage.seed + 1000 if seed_b is None else seed_b)
    _show(run_similarity(a, b, note=_note))


if __name__ == "__main__":
    main()
