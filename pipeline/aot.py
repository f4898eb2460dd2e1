"""Networks compiled ahead of time with AOTInductor: exported once (``torch.export``, dynamic hit
and edge counts), compiled to a package kept beside the trained weights, and loaded in
milliseconds by every later process, so inference starts without ``torch.compile``'s wait.

The package's name holds what it was compiled from and for: the device type, the torch version
and a digest of the code that defines the network, so a package from other code or another torch
is never loaded (the weights' own fingerprint names the directory it lies in).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from trkx.storage import atomic_path


def edge_classifier_shapes() -> tuple[dict, ...]:
    """Dynamic dimensions of an edge classifier's inputs (x, edge_index, edge features, region)."""
    from torch.export import Dim
    hits, edges = Dim("hits", min=2, max=2 ** 31 - 1), Dim("edges", min=2, max=2 ** 31 - 1)
    return {0: hits}, {1: edges}, {0: edges}, {0: hits}


def package_name(device: str, code: str) -> str:
    return f"aoti-{device}-torch{torch.__version__}-{code}.pt2"


def compile_package(net: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic_shapes, path: Path) -> None:
    """Export ``net`` on ``inputs`` (dimensions ``dynamic_shapes`` free) and compile it to ``path``."""
    with torch.no_grad():
        program = torch.export.export(net.eval(), inputs, dynamic_shapes=dynamic_shapes)
    with atomic_path(path) as tmp:
        staging = tmp.with_suffix(".pt2")      # the packager wants the .pt2 suffix
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=str(staging))
            staging.replace(tmp)
        finally:
            staging.unlink(missing_ok=True)


def aot_network(net: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic_shapes, package: Path | None,
                note: Callable[[str], None] | None = None) -> Callable:
    """``net`` compiled ahead of time: loaded from ``package`` when it is there, else compiled now
    and kept there (``package`` None: a temporary file, for this process only)."""
    if package is not None and package.is_file():
        try:
            return torch._inductor.aoti_load_package(str(package))
        except Exception as err:       # damaged or foreign: compiled again
            print(f"{package}: cannot load the compiled network ({type(err).__name__}); compiling it again",
                  file=sys.stderr)
    if note is not None:
        note("compiling the network ahead of time (once per trained weights; kept beside them)")
    if package is None:
        package = Path(tempfile.mkdtemp(prefix="trkx-aoti-")) / "net.pt2"
    package.parent.mkdir(parents=True, exist_ok=True)
    compile_package(net, inputs, dynamic_shapes, package)
    return torch._inductor.aoti_load_package(str(package))
