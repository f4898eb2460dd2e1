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


def package_name(device: str, code: str, numbers: str = "none", threads: int | None = None) -> str:
    """The kept package's file name; ``numbers`` is the stage's ``quantize`` mode (a bf16 package
    and an fp32 one of the same weights lie side by side), ``threads`` the torch thread count it
    is compiled for (default: the current one).

    Inductor writes a CPU kernel for the thread count of the process that compiles it: compiled
    on two threads, a reduction keeps per-thread buffers and merges them, which costs a
    one-thread run about 40% of the dense GNN's time (``benchmarks/aot_threads.py``; see
    docs/methods/edge-classification.md).  So each thread count gets its own package."""
    kind = "" if numbers == "none" else f"{numbers}-"
    threads = torch.get_num_threads() if threads is None else threads
    return f"aoti-frozen-{device}-{kind}t{threads}-torch{torch.__version__}-{code}.pt2"


def contiguous(inputs) -> tuple[torch.Tensor, ...]:
    """The inputs in row-major layout.  A package is compiled for the strides of the inputs it was
    exported on and reads any other layout wrongly (a column-major ``x``, as the data stage's
    ``torch.stack(..., dim=1)`` makes it, against the C++ tool's row-major one flipped 4.6% of a
    dense event's edges across 0.5), so packages are exported and called on contiguous inputs."""
    return tuple(t.contiguous() for t in inputs)


class ContiguousCall:
    """A loaded package that makes its inputs contiguous before running (see ``contiguous``)."""

    def __init__(self, runner):
        self.runner = runner

    def __call__(self, *inputs: torch.Tensor):
        return self.runner(*contiguous(inputs))


def load_package(path: Path) -> ContiguousCall:
    """A compiled package from ``path``, called on contiguous inputs."""
    return ContiguousCall(torch._inductor.aoti_load_package(str(path)))


def compile_package(net: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic_shapes, path: Path,
                    freeze: bool = True) -> None:
    """Export ``net`` on ``inputs`` (dimensions ``dynamic_shapes`` free) and compile it to ``path``.

    ``freeze``: the weights become constants, folded and laid out for the CPU's kernels
    (``benchmarks/gnn_inference.py`` measures it against the unfrozen package).  The kernels are
    written for the current torch thread count (see ``package_name``) and the contiguous layout
    of the inputs (see ``contiguous``)."""
    with torch.no_grad():
        program = torch.export.export(net.eval(), contiguous(inputs), dynamic_shapes=dynamic_shapes)
    with atomic_path(path) as tmp:
        staging = tmp.with_suffix(".pt2")      # the packager wants the .pt2 suffix
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=str(staging),
                                                     inductor_configs={"freezing": freeze})
            staging.replace(tmp)
        finally:
            staging.unlink(missing_ok=True)


class CompiledNetwork(nn.Module):
    """A loaded package as a module (it takes the place of a stage's network); inputs smaller than
    the package's dynamic dimensions allow (two hits, two edges) go to ``fallback``, the eager
    network."""

    def __init__(self, package: Path, fallback: nn.Module, dynamic_shapes):
        super().__init__()
        self.fallback = fallback
        self.free_dims = [(i, d) for i, dims in enumerate(dynamic_shapes) for d in dims]
        self.runner = load_package(package)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if any(inputs[i].shape[d] < 2 for i, d in self.free_dims):
            return self.fallback(*inputs)
        return self.runner(*inputs)


def aot_network(net: nn.Module, inputs: tuple[torch.Tensor, ...], dynamic_shapes, package: Path | None) -> Callable:
    """``net`` compiled ahead of time: loaded from ``package`` when it is there, else compiled now
    and kept there (``package`` None: a temporary file, for this process only)."""
    if package is not None and package.is_file():
        try:
            return load_package(package)
        except Exception as err:       # damaged or foreign: compiled again
            print(f"{package}: cannot load the compiled network ({type(err).__name__}); compiling it again",
                  file=sys.stderr)
    if package is None:
        package = Path(tempfile.mkdtemp(prefix="trkx-aoti-")) / "net.pt2"
    package.parent.mkdir(parents=True, exist_ok=True)
    compile_package(net, inputs, dynamic_shapes, package)
    return load_package(package)


class AheadOfTimeCompiled:
    """Mixin for an edge-classifier stage whose network can run compiled ahead of time: the
    package kept beside the weights, written into bundles, loaded from them.  The stage says when
    (``aot_enabled``)."""

    def aot_enabled(self) -> bool:
        raise NotImplementedError

    def _package_path(self) -> Path | None:
        """Where the compiled network is kept: beside the weights (None when they have no directory)."""
        from trkx.codehash import code_digest
        if self.weights_dir is None:
            return None
        numbers = self.numbers
        return self.weights_dir / package_name(self.device.type, code_digest(type(self).__module__), numbers)

    def _aot(self, inputs: tuple[torch.Tensor, ...]) -> Callable | None:
        """The network compiled ahead of time (from the kept package when there is one); None
        where ``torch.export`` cannot capture it."""
        try:
            return aot_network(self.model.net, inputs, edge_classifier_shapes(), self._package_path())
        except Exception as err:    # an architecture torch.export cannot capture
            print(f"{self.name}: ahead-of-time compilation failed ({type(err).__name__}: {str(err)[:200]}); "
                  "using torch.compile", file=sys.stderr)
            return None

    def export_aot(self, event, path: Path) -> bool:
        """The compiled network for a bundle, at ``path``, compiled now on ``event`` for the
        current thread count and frozen, as the kept package is (the C++ tool passes contiguous
        inputs, for which it is compiled); False where inference is not compiled ahead of time."""
        if not self.aot_enabled():
            return False
        compile_package(self.model.net, self.example_inputs(event), edge_classifier_shapes(), path)
        return True

    def use_compiled(self, package: Path) -> None:
        """Run inference with a bundle's compiled package."""
        self.use_network(CompiledNetwork(package, self.model.net, edge_classifier_shapes()))
