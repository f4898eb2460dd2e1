"""GNN inference on one CPU thread: model size, node projection, torch.compile, AOTInductor
packages (frozen or not) and ONNX Runtime's CPU execution provider side by side.

    python benchmarks/gnn_inference.py [configs/benchmark.yaml] [--repeats 3] [--events 2]

Takes the graphs the pipeline's graph-construction stage built for its test events (computed or
read from the cache), and times the interaction GNN's forward pass in several variants on each,
interleaved, median over repeats.  Weights are random: the time does not depend on their values.
Prints a markdown table with each variant's ratio to the first (the old default: hidden 64,
6 iterations, concatenated edge inputs).
"""
import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from trkx.aot import compile_package, edge_classifier_shapes
from trkx.runner import Pipeline
from trkx.event import EDGE_FEATURES, edge_features
from trkx.models import InteractionGNN
from trkx.onnx import OnnxNetwork, export_onnx, onnx_available
from trkx.stages.edge_classification.gnn import GNNConfig
from trkx.storage import load_event
from trkx.timing import stopwatch

VARIANTS = [  # (label, hidden, iterations, node projection, compilation)
    ("hidden 64, 6 iterations, concatenated inputs", 64, 6, False, None),
    ("hidden 64, 6 iterations, node projection", 64, 6, True, None),
    ("hidden 32, 6 iterations, concatenated inputs", 32, 6, False, None),
    ("hidden 32, 6 iterations, node projection", 32, 6, True, None),
    ("hidden 32, 4 iterations, node projection", 32, 4, True, None),
    ("hidden 32, 6 iterations, node projection, torch.compile", 32, 6, True, "compile"),
    ("hidden 32, 6 iterations, node projection, AOTInductor package", 32, 6, True, "aoti"),
    ("hidden 32, 6 iterations, node projection, AOTInductor package, frozen", 32, 6, True, "aoti-frozen"),
    ("hidden 32, 6 iterations, node projection, ONNX Runtime (CPU provider)", 32, 6, True, "onnx"),
]


def build(hidden, iterations, projection, compilation, example, tmp: Path):
    torch.manual_seed(0)
    net = InteractionGNN(example[0].shape[1], len(EDGE_FEATURES), GNNConfig(hidden=hidden, n_iterations=iterations)).eval()
    net.node_projection = projection
    if compilation == "compile":
        return torch.compile(net, dynamic=True)
    if compilation == "onnx":
        export_onnx(net, example, tmp / "gnn.onnx")
        return OnnxNetwork(tmp / "gnn.onnx", threads=1)
    if compilation is not None:
        path = tmp / f"{compilation}.pt2"
        compile_package(net, example, edge_classifier_shapes(), path, freeze=compilation == "aoti-frozen")
        return torch._inductor.aoti_load_package(str(path))
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pipeline", nargs="?", default="configs/benchmark.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--events", type=int, default=2)
    a = ap.parse_args()
    pipe = Pipeline(a.pipeline, progress=False)
    graph_stage = next(s for s in pipe.stages if s.role == "graph_construction")
    outputs = pipe.run(until=graph_stage.name, write_outputs=False)
    events = [load_event(p) for p in outputs[-1].paths["test"][: a.events]]
    torch.set_num_threads(1)
    inputs = [(e.x, e.edge_index, edge_features(e, e.edge_index), e.region) for e in events]
    tmp = Path(tempfile.mkdtemp(prefix="trkx-gnn-inference-"))
    variants = [v for v in VARIANTS if v[4] != "onnx" or onnx_available()]
    if len(variants) < len(VARIANTS):
        print("(onnxruntime / onnxscript not installed: the ONNX Runtime row is left out; pip install 'trkx[onnx]')")
    nets = [build(*v[1:], inputs[0], tmp) for v in variants]
    times = [[] for _ in variants]
    with torch.no_grad():
        for net, inp in ((n, i) for n in nets for i in inputs):   # warm-up (and compilation)
            net(*inp)
        for _ in range(a.repeats):
            for k, net in enumerate(nets):
                for inp in inputs:
                    with stopwatch(times[k]):
                        net(*inp)
    medians = [statistics.median(t) for t in times]
    edges = sum(e.edge_index.shape[1] for e in events) / len(events)
    nodes = sum(e.num_nodes for e in events) / len(events)
    print(f"GNN forward, one thread, {len(events)} test events of {a.pipeline} "
          f"({nodes:,.0f} hits, {edges:,.0f} edges on average), median of {a.repeats}\n")
    print("| variant | s / event | vs first |\n|---|---|---|")
    for (label, *_), m in zip(variants, medians):
        print(f"| {label} | {m:.3f} | {medians[0] / m:.2f}× |")


if __name__ == "__main__":
    main()
