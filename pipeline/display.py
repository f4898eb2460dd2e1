"""``trkx display``: an event display of one test event of a finished run.

An interactive HTML page (plotly: x-y, r-z, 3D, and the graph's edges in x-y coloured by their
score) and a static PNG of the same four views (matplotlib), in ``<workdir>/display/``.  Hits are
coloured by their reconstructed track; tracks are drawn through their hits in order of distance
from the origin.  Marked (``track_status``, with the run's own ``evaluation:`` settings): *fake*
tracks (a candidate matched to no particle), *split* tracks (pieces of one particle: every
candidate whose majority particle is another candidate's too) and *missed* target particles
(their true path, dotted).  Hovering
a hit shows its hit, track and particle ids, the particle's pT and the track's status.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trkx.config import ConfigError
from trkx.metrics.tracks import match_pairs, particle_table
from trkx.storage import atomic_path, read_json

MARKS = {"fake": "#d62728", "split": "#ff7f0e", "missed": "#000000"}
SCORE_BINS = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0 + 1e-9])
PALETTE = np.array(["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                    "#7f7f7f", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94"])


@dataclass
class EventView:
    """What the display draws of one event."""
    event_id: int
    hits: pd.DataFrame          # hit_id, x, y, z, r, track_id, particle_id, pt, status, missed
    edges: np.ndarray           # (2, E) hit indices of the graph's edges (possibly a sample)
    scores: np.ndarray          # (E,) their scores
    edges_total: int            # the graph's edge count before sampling
    score_name: str


def pipeline_of(target: Path) -> Path:
    """The pipeline YAML behind ``target``: the YAML itself, or a workdir whose metrics.json
    names it (its provenance)."""
    if target.is_file():
        return target
    metrics = target / "metrics.json"
    if not metrics.is_file():
        raise FileNotFoundError(f"{metrics}: not found (pass a pipeline YAML or the workdir of a finished `trkx run`)")
    pipeline = (read_json(metrics, "metrics file").get("provenance") or {}).get("pipeline")
    if not pipeline or not Path(pipeline).is_file():
        raise ConfigError(f"{metrics}: names no pipeline YAML that exists ({pipeline!r}); pass the YAML instead")
    return Path(pipeline)


def track_status(hits: pd.DataFrame, evaluation) -> pd.DataFrame:
    """Per hit: ``status`` of its track and ``missed`` (its particle is a target particle that no
    track matches by the configured style).  A candidate (``min_track_hits`` or more hits) is
    *split* when the particle holding most of its hits holds most of another candidate's too
    (pieces of one particle), else *matched* or *fake* by the configured matching; shorter tracks
    are *short*, unassigned hits *none*."""
    size = hits[hits.track_id >= 0].groupby("track_id").size()
    candidates = size.index[size >= evaluation.min_track_hits]
    good = match_pairs(hits, evaluation.matching, evaluation.matching_fraction)
    good = good[good.matched & good.track_id.isin(candidates)]
    pieces = match_pairs(hits, "atlas", 0.5 + 1e-9)          # the track's majority particle (> half)
    pieces = pieces[pieces.matched & pieces.track_id.isin(candidates)]
    per_particle = pieces.groupby("particle_id").track_id.nunique()
    split_tracks = pieces.track_id[pieces.particle_id.isin(per_particle.index[per_particle > 1])]
    status = pd.Series("fake", index=candidates)
    status[status.index.isin(good.track_id)] = "matched"
    status[status.index.isin(split_tracks)] = "split"
    out = hits.copy()
    out["status"] = np.where(out.track_id < 0, "none", out.track_id.map(status).fillna("short"))
    parts = particle_table(hits)          # the target selection of trkx.metrics.tracks
    target = parts.particle_id[(parts.pt >= evaluation.pt_min) & (parts.nhits >= evaluation.min_hits)
                               & (parts.eta.abs() <= evaluation.eta_max)]
    out["missed"] = out.particle_id.isin(target) & ~out.particle_id.isin(good.particle_id)
    return out


def event_view(event, evaluation, score_name: str | None, max_edges: int, seed: int) -> EventView:
    """The display's view of a labelled event graph; at most ``max_edges`` edges (a seeded sample)."""
    r, phi = event.r.numpy(), event.phi.numpy()
    hits = pd.DataFrame({"hit_id": event.hit_id.numpy(), "x": r * np.cos(phi), "y": r * np.sin(phi),
                         "z": event.z.numpy(), "r": r, "track_id": event.track_id.numpy(),
                         "particle_id": event.particle_id.numpy(), "pt": event.pt.numpy(), "eta": event.eta.numpy()})
    hits = track_status(hits, evaluation)
    edges = event.edge_index.numpy() if "edge_index" in event else np.zeros((2, 0), dtype=np.int64)
    scores = event[score_name].numpy() if score_name and score_name in event else np.ones(edges.shape[1])
    total = edges.shape[1]
    if total > max_edges:
        keep = np.sort(np.random.default_rng(seed).choice(total, max_edges, replace=False))
        edges, scores = edges[:, keep], scores[keep]
    return EventView(int(event.event_id), hits, edges, scores, total, score_name or "edge")


def paths(hits: pd.DataFrame, group: str) -> pd.DataFrame:
    """The hits of each ``group`` (track or particle) in order of distance from the origin, with a
    NaN row after each group, so that one line trace draws every path separately."""
    h = hits.assign(_d=np.hypot(hits.r, hits.z)).sort_values([group, "_d"])
    last = h[group].ne(h[group].shift(-1)).to_numpy()
    gaps = h[last].assign(x=np.nan, y=np.nan, z=np.nan, r=np.nan, _d=np.inf)
    return pd.concat([h, gaps]).sort_values([group, "_d"], kind="stable")


def marked_paths(hits: pd.DataFrame):
    """(kind, ``paths`` of its tracks or true particles, how many) for the fakes, the split tracks
    and the missed target particles that the event has."""
    for kind in ("fake", "split", "missed"):
        group = "particle_id" if kind == "missed" else "track_id"
        chosen = hits[hits.missed] if kind == "missed" else hits[hits.status == kind]
        if not chosen.empty:
            yield kind, paths(chosen, group), chosen[group].nunique()


def segments(xa, ya, xb, yb) -> tuple[np.ndarray, np.ndarray]:
    """Line-trace coordinates of separate segments a -> b (NaN between them)."""
    gap = np.full_like(xa, np.nan)
    return np.stack([xa, xb, gap], 1).ravel(), np.stack([ya, yb, gap], 1).ravel()


def _colours(track_id: np.ndarray) -> np.ndarray:
    return np.where(track_id >= 0, PALETTE[np.maximum(track_id, 0) % len(PALETTE)], "#d0d0d0")


def _hover(h: pd.DataFrame) -> list[str]:
    return [f"hit {a}<br>track {b} ({s})<br>particle {c}<br>pT {d:.2f} GeV" for a, b, s, c, d in
            zip(h.hit_id, h.track_id, h.status, h.particle_id, h.pt)]


def html_figure(view: EventView, title: str):
    """The interactive display: x-y, r-z, 3D and the edges by score, as a plotly figure."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    h = view.hits
    fig = make_subplots(rows=2, cols=2, specs=[[{"type": "xy"}, {"type": "xy"}], [{"type": "scene"}, {"type": "xy"}]],
                        subplot_titles=("x-y", "r-z", "3D", f"graph edges by {view.score_name} (x-y; "
                                        f"{view.edges.shape[1]:,} of {view.edges_total:,} shown)"),
                        horizontal_spacing=0.06, vertical_spacing=0.08)
    colour, hover = _colours(h.track_id.to_numpy()), _hover(h)
    marker = dict(size=3, color=colour)
    fig.add_trace(go.Scattergl(x=h.x, y=h.y, mode="markers", marker=marker, text=hover, hoverinfo="text",
                               name="hits (by track)", legendgroup="hits"), 1, 1)
    fig.add_trace(go.Scattergl(x=h.z, y=h.r, mode="markers", marker=marker, text=hover, hoverinfo="text",
                               legendgroup="hits", showlegend=False), 1, 2)
    fig.add_trace(go.Scatter3d(x=h.x, y=h.y, z=h.z, mode="markers", marker=dict(size=1.5, color=colour),
                               text=hover, hoverinfo="text", legendgroup="hits", showlegend=False), 2, 1)
    for kind, p, n in marked_paths(h):
        line = dict(color=MARKS[kind], width=2, dash="dot" if kind == "missed" else "solid")
        label = {"fake": "fake tracks", "split": "split tracks", "missed": "missed target particles (truth)"}[kind]
        fig.add_trace(go.Scattergl(x=p.x, y=p.y, mode="lines", line=line, name=f"{label}: {n}",
                                   legendgroup=kind, hoverinfo="skip"), 1, 1)
        fig.add_trace(go.Scattergl(x=p.z, y=p.r, mode="lines", line=line, legendgroup=kind, showlegend=False,
                                   hoverinfo="skip"), 1, 2)
        fig.add_trace(go.Scatter3d(x=p.x, y=p.y, z=p.z, mode="lines", line=dict(color=MARKS[kind], width=3),
                                   legendgroup=kind, showlegend=False, hoverinfo="skip"), 2, 1)
    import plotly.colors as pc
    x, y = h.x.to_numpy(), h.y.to_numpy()
    for lo, hi, c in zip(SCORE_BINS[:-1], SCORE_BINS[1:], pc.sample_colorscale("Viridis", len(SCORE_BINS) - 1)):
        sel = (view.scores >= lo) & (view.scores < hi)
        if not sel.any():
            continue
        a, b = view.edges[:, sel]
        ex, ey = segments(x[a], y[a], x[b], y[b])
        fig.add_trace(go.Scattergl(x=ex, y=ey, mode="lines", line=dict(color=c, width=1),
                                   name=f"edges, score {lo:.1f}-{min(hi, 1.0):.1f}: {int(sel.sum()):,}",
                                   legendgroup=f"score{lo}", hoverinfo="skip"), 2, 2)
    for row, col, xt, yt in ((1, 1, "x [mm]", "y [mm]"), (1, 2, "z [mm]", "r [mm]"), (2, 2, "x [mm]", "y [mm]")):
        fig.update_xaxes(title_text=xt, row=row, col=col)
        fig.update_yaxes(title_text=yt, row=row, col=col)
    fig.update_yaxes(scaleanchor="x", scaleratio=1, row=1, col=1)
    fig.update_yaxes(scaleanchor="x4", scaleratio=1, row=2, col=2)
    fig.update_scenes(xaxis_title="x [mm]", yaxis_title="y [mm]", zaxis_title="z [mm]", aspectmode="data")
    fig.update_layout(title=title, height=1100, width=1400, template="plotly_white", legend=dict(itemsizing="constant"))
    return fig


def png_figure(view: EventView, title: str):
    """The same four views as a static matplotlib figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    h = view.hits
    colour = _colours(h.track_id.to_numpy())
    fig = plt.figure(figsize=(13, 11))
    axes = [fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2), fig.add_subplot(2, 2, 3, projection="3d"),
            fig.add_subplot(2, 2, 4)]
    axes[0].scatter(h.x, h.y, s=1.5, c=colour, lw=0)
    axes[1].scatter(h.z, h.r, s=1.5, c=colour, lw=0)
    axes[2].scatter(h.x, h.y, h.z, s=0.5, c=colour, lw=0)
    for kind, p, n in marked_paths(h):
        style = dict(color=MARKS[kind], lw=1.2, ls=":" if kind == "missed" else "-")
        axes[0].plot(p.x, p.y, label=f"{kind}: {n}", **style)
        axes[1].plot(p.z, p.r, **style)
        axes[2].plot(p.x, p.y, p.z, **style)
    x, y = h.x.to_numpy(), h.y.to_numpy()
    order = np.argsort(view.scores, kind="stable")      # the best-scored edges drawn last, on top
    a, b = view.edges[:, order]
    lines = LineCollection(np.stack([np.stack([x[a], y[a]], 1), np.stack([x[b], y[b]], 1)], 1),
                           array=view.scores[order], cmap="viridis", linewidths=0.3, clim=(0, 1))
    axes[3].add_collection(lines)
    axes[3].autoscale()
    fig.colorbar(lines, ax=axes[3], label=view.score_name, fraction=0.04)
    for ax, (xt, yt, t) in zip([axes[0], axes[1], axes[3]], [("x [mm]", "y [mm]", "x-y"), ("z [mm]", "r [mm]", "r-z"),
                                                             ("x [mm]", "y [mm]", f"graph edges ({view.edges.shape[1]:,} "
                                                              f"of {view.edges_total:,})")]):
        ax.set(xlabel=xt, ylabel=yt, title=t)
    axes[0].set_aspect("equal")
    axes[3].set_aspect("equal")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, loc="upper right")
    axes[2].set(xlabel="x [mm]", ylabel="y [mm]", zlabel="z [mm]", title="3D")
    fig.suptitle(title)
    return fig


def display_event(target: str | Path, event_id: int | None = None, max_edges: int = 50_000,
                  progress: bool = False) -> dict:
    """Write ``display/event<ID>.html`` and ``.png`` for test event ``event_id`` (default: the
    first) of the run behind ``target`` (a pipeline YAML or its workdir; computed or read from the
    cache); returns {"html", "png", "event", "counts"}."""
    from trkx.report import save_figure, write_report
    from trkx.runner import Pipeline
    from trkx.storage import load_event
    pipe = Pipeline(pipeline_of(Path(target)), progress=progress)
    if not any(s.role == "track_building" for s in pipe.stages):
        raise ConfigError(f"{pipe.path}: the chain has no track building stage (nothing to display)")
    outputs = pipe.run(write_outputs=False)
    events = {int(p.stem[5:]): p for p in outputs[-1].paths["test"]}
    chosen = min(events) if event_id is None else event_id
    if chosen not in events:
        raise ConfigError(f"event {chosen}: not a test event of {pipe.path} (test events: "
                          f"{', '.join(map(str, sorted(events)))})")
    scorers = [s for s in pipe.stages if s.role == "edge_classification"]
    view = event_view(load_event(events[chosen]), pipe.config.evaluation,
                      scorers[-1].score_field if scorers else None, max_edges, pipe.config.seed)
    out = pipe.workdir / "display"
    out.mkdir(parents=True, exist_ok=True)
    h = view.hits
    counts = {"hits": len(h), "tracks": int(h.track_id[h.track_id >= 0].nunique()),
              **{k: int(h.track_id[h.status == k].nunique()) for k in ("matched", "split", "fake")},
              "missed": int(h.particle_id[h.missed].nunique()), "edges": view.edges_total}
    title = (f"{pipe.path.name}, event {chosen}: {counts['hits']:,} hits, {counts['tracks']} tracks "
             f"({counts['fake']} fake, {counts['split']} split), {counts['missed']} missed target particles")
    html = out / f"event{chosen}.html"
    with atomic_path(html) as tmp:
        html_figure(view, title).write_html(tmp, include_plotlyjs=True, full_html=True)
    png = out / f"event{chosen}.png"
    save_figure(png_figure(view, title), png)
    if (pipe.workdir / "metrics.json").is_file() and (pipe.workdir / "timing.json").is_file():
        write_report(pipe.workdir)         # report.md shows the display beside the tables
    return {"html": html, "png": png, "event": chosen, "counts": counts}
