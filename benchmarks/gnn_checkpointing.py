"""Peak training memory and step time of the GNN for checkpointing none / partial / maximal.

    python benchmarks/gnn_checkpointing.py [--nodes 50000 --edges 500000 --hidden 64 --iterations 6]
"""
import argparse

from trkx.bench import checkpointing_benchmark, checkpointing_markdown

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=50000)
    ap.add_argument("--edges", type=int, default=500000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=6)
    a = ap.parse_args()
    print(checkpointing_markdown(checkpointing_benchmark(a.nodes, a.edges, a.hidden, a.iterations)))
