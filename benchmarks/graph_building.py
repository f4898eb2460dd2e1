"""Graph-building benchmark: FRNN backends on the same embedded points of large simulated events.

    python benchmarks/graph_building.py [configs/benchmark_metric_learning.yaml] [--repeats 5] [--scaling]

Same as `trkx bench configs/benchmark_metric_learning.yaml --graph-building`: the pipeline's embedded test events.  Prints medians per event, edges/s,
ratios to the kd-tree and faiss, and whether every backend's edges equal the kd-tree's;
``--scaling`` adds point sets from 20k to ~110k hits and a plot of seconds against hits.
"""
import sys

from trkx.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    pipeline = args.pop(0) if args and not args[0].startswith("-") else "configs/benchmark_metric_learning.yaml"
    main(["bench", pipeline, "--graph-building", *args])
