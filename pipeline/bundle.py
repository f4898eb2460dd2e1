"""``trkx export``: a trained pipeline as a self-contained bundle, and reading one back.

Layout of a bundle directory::

    manifest.json            trkx / torch versions, the chain (names, kinds, roles, files), fingerprints
    data.yaml                the data source's config (features, scales, regions, transforms)
    stages/<name>.yaml       each stage's full config (the track builder's score field explicit)
    weights/<name>.pt        each trained stage's state, as the stage saves it
    torchscript/<name>.pt    each learned network, traced to TorchScript (loaded by LibTorch in C++)
    torchscript/edge_features.pt   the edge classifiers' edge features, scripted (the module map is scripted too)
    aoti/<name>.pt2          a network whose stage compiles it (``compile``), compiled ahead of time
                             (AOTInductor): what ``trkx reco`` and the C++ tool run, where present
    chain.txt                the chain for the C++ tool, one ``key value...`` line per setting

TorchScript, and AOTInductor packages: the torch wheel ships LibTorch's headers, libraries and
CMake package, so the C++ side loads these files with ``torch::jit::load`` and
``AOTIModelPackageLoader`` from packages installed here (ONNX Runtime's C++ headers are not in the
registries).  Traced networks run the same kernels as eager PyTorch, so their scores are bit for
bit the same; a compiled package runs the fused kernels ``trkx run`` runs with ``compile``.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn

from trkx.config import ConfigError, config_to_dict
from trkx.event import edge_features_from
from trkx.fingerprint import file_digest
from trkx.outdir import check_not_protected, check_output_dir, replace_dir
from trkx.provenance import provenance
from trkx.stage import NoCppPort, load_stage
from trkx.storage import CorruptEntryError, first_line, load_event, read_json, write_json, write_text

BUNDLE_FORMAT = 2                  # 2: sha256 per file and content fingerprints
class EdgeFeatures(nn.Module):
    """``trkx.event.edge_features_from`` as a module, scripted for C++."""

    def forward(self, r: torch.Tensor, phi: torch.Tensor, z: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return edge_features_from(r, phi, z, edge_index)


def _stage_yaml(stage, out: Path | None = None) -> dict:
    """The stage's YAML for the bundle; a stage from a plugin file has the file copied into
    ``plugins/`` of the bundle and named by ``plugin:``."""
    head = {"stage": stage.kind, "name": stage.name}
    if out is not None and type(stage).__module__.startswith("trkx_plugin_"):
        module = sys.modules[type(stage).__module__]
        copy = out / "plugins" / Path(module.__file__).name
        copy.parent.mkdir(exist_ok=True)
        shutil.copy(module.__file__, copy)
        head["plugin"] = f"../plugins/{copy.name}"       # relative to stages/
    return {**head, **stage.resolved_config()}


def _cpp_chain(pipe) -> tuple[list[str] | None, str]:
    """chain.txt lines for the C++ tool, each stage's (and the data source's) own, or (None, why not)."""
    try:
        return [line for stage in [pipe.data] + pipe.stages for line in stage.cpp_lines()], ""
    except NoCppPort as err:
        return None, str(err)


def is_bundle(path: Path) -> bool:
    """Whether ``path`` holds a trkx bundle (an earlier export: its manifest names the format)."""
    try:
        manifest = read_json(path / "manifest.json", "bundle manifest")
    except (OSError, CorruptEntryError):
        return False
    return isinstance(manifest, dict) and "format" in manifest and "stages" in manifest


def export_bundle(pipeline_path: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict:
    """Write the bundle of a trained pipeline (nothing is trained: an untrained stage is an error).
    ``out_dir`` must be new, empty or an earlier bundle (or ``overwrite``), and never the current
    directory or one that holds the pipeline's workdir or cache; the bundle is written beside it
    and moved into place whole."""
    from trkx.runner import Pipeline
    pipe = Pipeline(pipeline_path, progress=False)
    target = Path(out_dir).resolve()
    protect = [(pipe.workdir, "the pipeline's workdir"), (pipe.cachedir, "the pipeline's cache")]
    check_not_protected(target, protect)
    check_output_dir(target, "bundle", is_bundle, overwrite)
    fps = pipe.load_trained()
    staged = target.with_name(f".{target.name}.export-{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    try:
        manifest = _write_bundle(pipe, fps, staged)
        replace_dir(target, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return manifest


def _write_bundle(pipe, fps: dict[str, str], out: Path) -> dict:
    from trkx.runner import entry_fingerprint
    (out / "stages").mkdir(parents=True)
    (out / "torchscript").mkdir()
    # a real event to trace the networks on: the first test event, through the chain
    data_out = pipe.run_data()
    event = load_event(data_out.paths["test"][0])
    write_text(out / "data.yaml", yaml.safe_dump(_stage_yaml(pipe.data), sort_keys=False))
    chain = []
    # content fingerprints (config, upstream, weights; not the code): what a later trkx checks on load
    content = data_content = entry_fingerprint(pipe.data, None, None, code=False)
    for stage in pipe.stages:
        entry = {"name": stage.name, "kind": stage.kind, "role": stage.role, "config": f"stages/{stage.name}.yaml",
                 "fingerprint": fps[stage.name]}
        write_text(out / entry["config"], yaml.safe_dump(_stage_yaml(stage, out), sort_keys=False))
        if stage.trainable:
            entry["weights"] = f"weights/{stage.name}.pt"
            stage.save(out / entry["weights"])
        content = entry["content"] = entry_fingerprint(stage, content, out / entry["weights"] if stage.trainable
                                                       else None, code=False)
        if hasattr(stage, "export"):
            entry["torchscript"] = f"torchscript/{stage.name}.pt"
            stage.export(event).save(str(out / entry["torchscript"]))
        if hasattr(stage, "export_aot") and stage.export_aot(event, out / "aoti" / f"{stage.name}.pt2"):
            entry["aoti"] = f"aoti/{stage.name}.pt2"
            entry["aoti_threads"] = torch.get_num_threads()    # its kernels are written for this count
        with torch.no_grad():
            event = stage.infer(event)
        chain.append(entry)
    torch.jit.script(EdgeFeatures()).save(str(out / "torchscript" / "edge_features.pt"))
    cpp_lines, why_not = _cpp_chain(pipe)
    if cpp_lines:
        write_text(out / "chain.txt", "\n".join(cpp_lines) + "\n")
    from importlib.metadata import version
    manifest = {"format": BUNDLE_FORMAT, "trkx": version("trkx"), "torch": torch.__version__,
                "pipeline": str(pipe.path.resolve()), "data": {"config": "data.yaml", "fingerprint": fps[pipe.data.name],
                                                            "content": data_content},
                "stages": chain, "evaluation": config_to_dict(pipe.config.evaluation),
                "cpp": {"supported": cpp_lines is not None, **({"reason": why_not} if why_not else {})},
                "sha256": {str(p.relative_to(out)): file_digest(p, 64) for p in sorted(out.rglob("*")) if p.is_file()},
                "provenance": provenance(pipe.path, fps)}
    write_json(out / "manifest.json", manifest)
    return manifest


@dataclass
class ManifestStage:
    name: str
    kind: str
    role: str
    config: str
    fingerprint: str              # the cache key the stage had (config, upstream, weights, code)
    content: str                  # the same without the code: checked on load
    weights: str | None = None
    torchscript: str | None = None
    aoti: str | None = None       # the network compiled ahead of time (AOTInductor package)
    aoti_threads: int | None = None   # the torch thread count it was compiled for


@dataclass
class ManifestData:
    config: str
    fingerprint: str
    content: str


@dataclass
class Manifest:
    """``manifest.json``, typed: a manifest that is not a mapping, lacks a key or has a wrong type
    is one ConfigError naming the file and the key."""
    format: int
    trkx: str
    torch: str
    pipeline: str
    data: ManifestData
    stages: list[ManifestStage]
    sha256: dict
    evaluation: dict = field(default_factory=dict)
    cpp: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def read_manifest(path: Path) -> Manifest:
    """The bundle's manifest, checked: its format, its types, and every file it names inside the
    bundle and matching its sha256."""
    from trkx.config import parse_config
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{path}: not a trkx bundle (no manifest.json)")
    raw = read_json(manifest_path, "bundle manifest")
    if not isinstance(raw, dict):
        raise ConfigError(f"{manifest_path}: expected a mapping at the top level, got {type(raw).__name__}")
    if raw.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"{manifest_path}: bundle format {raw.get('format')!r}, this trkx reads {BUNDLE_FORMAT}")
    manifest = parse_config(Manifest, raw, str(manifest_path))
    root = path.resolve()
    named = [("data.config", manifest.data.config)] + [
        (f"stages[{i}].{key}", getattr(e, key)) for i, e in enumerate(manifest.stages)
        for key in ("config", "weights", "torchscript", "aoti") if getattr(e, key) is not None]
    for key, rel in named:
        if not (root / rel).resolve().is_relative_to(root):
            raise ConfigError(f"{manifest_path}: key '{key}': {rel!r} lies outside the bundle")
        if rel not in manifest.sha256:
            raise ConfigError(f"{manifest_path}: key '{key}': {rel!r} has no sha256 in the manifest")
    for rel, digest in manifest.sha256.items():
        file = (root / rel).resolve()
        if not file.is_relative_to(root):
            raise ConfigError(f"{manifest_path}: key 'sha256': {rel!r} lies outside the bundle")
        if not file.is_file():
            raise ConfigError(f"{path / rel}: missing from the bundle (the manifest lists it)")
        if file_digest(file, 64) != digest:
            raise ConfigError(f"{path / rel}: does not match the manifest's sha256 (changed after export); "
                              f"export the bundle again")
    return manifest


def load_bundle(path: str | Path, exported: bool = True):
    """A ``trkx.chain.Chain`` from a bundle: stages from their configs, trained state from the
    weights and, with ``exported``, inference through the TorchScript networks."""
    from trkx.config import parse_config
    from trkx.chain import Chain
    from trkx.runner import EvalConfig, check_chain, entry_fingerprint
    path = Path(path)
    manifest = read_manifest(path)
    manifest_path = path / "manifest.json"
    source = load_stage(path / manifest.data.config, default_kind="data")
    stages, upstream = [], manifest.data.content
    for entry in manifest.stages:
        stage = load_stage(path / entry.config)
        weights = path / entry.weights if entry.weights is not None else None
        if stage.trainable != (weights is not None):
            raise ConfigError(f"{manifest_path}: stage '{entry.name}' ({stage.kind}) "
                              f"{'needs' if stage.trainable else 'has no'} weights")
        if weights is not None:
            try:
                stage.load(weights)
            except CorruptEntryError:
                raise
            except (ValueError, KeyError, RuntimeError) as err:   # a foreign or mismatched state
                raise ConfigError(f"{weights}: not the weights of stage '{entry.name}' ({first_line(err)})") from None
        # the chain of content fingerprints: stages swapped, configs or weights edited break it
        upstream = entry_fingerprint(stage, upstream, weights, code=False)
        if upstream != entry.content:
            raise ConfigError(f"{manifest_path}: stage '{entry.name}' does not match its fingerprint "
                              f"(its config, weights or place in the chain changed after export)")
        if exported and entry.aoti is not None and hasattr(stage, "use_compiled"):
            threads = torch.get_num_threads()
            if entry.aoti_threads is not None and entry.aoti_threads != threads:
                print(f"{path / entry.aoti}: compiled for {entry.aoti_threads} thread(s), running on {threads} "
                      f"(slower than it could be: `trkx export --threads {threads}` compiles it for this "
                      "count)", file=sys.stderr)
            try:
                stage.use_compiled(path / entry.aoti)
            except Exception as err:     # another torch, another CPU, a damaged file
                raise ConfigError(f"{path / entry.aoti}: cannot load the compiled network ({first_line(err)}); "
                                  "export the bundle again with this torch") from None
        elif exported and entry.torchscript is not None and hasattr(stage, "use_network"):
            try:
                stage.use_network(torch.jit.load(str(path / entry.torchscript)))
            except RuntimeError as err:
                raise ConfigError(f"{path / entry.torchscript}: not a TorchScript network ({first_line(err)})") from None
        stages.append(stage)
    check_chain([source] + stages, [path / manifest.data.config] + [path / e.config for e in manifest.stages],
                str(manifest_path))
    evaluation = parse_config(EvalConfig, manifest.evaluation, str(manifest_path))
    fps = {source.name: manifest.data.fingerprint} | {e.name: e.fingerprint for e in manifest.stages}
    return Chain(source, stages, str(path), evaluation, fps)
