"""Stage-timing benchmark: `trkx bench` on a pipeline (default configs/pipeline.yaml)."""
import sys

from trkx.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    pipeline = args.pop(0) if args and not args[0].startswith("-") else "configs/pipeline.yaml"
    main(["bench", pipeline, *args])
