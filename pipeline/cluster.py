"""Many events on many machines: ``--cluster ADDRESS`` (a running ``dask.distributed`` scheduler)
or ``--cluster local:N`` (a ``LocalCluster`` of N single-threaded worker processes, started and
stopped here).

Every event of a stage is one task (``map_ordered``). A worker rebuilds the pipeline from its
YAML once (``trkx.runner.worker_stage``; the YAML, the cache and the inputs must be on a file
system the workers share, as on any batch farm), loads the stage's trained state from the cache,
runs the event and writes it to the cache atomically, exactly as one process would; the scheduler only sees paths and seconds. A worker that
dies has its tasks run again elsewhere (Dask reschedules them); a half-written entry of the dead
worker is a temporary file the next writer cleans, never an event. Workers run the stages eagerly
(no ``torch.compile``), as ``--workers N`` does, and give the same events as one process.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator


from trkx.config import ConfigError



def parse_cluster(spec: str) -> tuple[str, int | str]:
    """("local", N) for ``local:N``, ("address", spec) for a scheduler address."""
    if spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--cluster {spec!r}: expected local:N with N >= 1 workers")
        return "local", n
    if "://" not in spec and ":" not in spec:
        raise ConfigError(f"--cluster {spec!r}: expected a scheduler address (tcp://host:8786) or local:N")
    return "address", spec


@contextmanager
def open_cluster(spec: str | None, note=print) -> Iterator[object]:
    """A ``distributed.Client`` for ``spec`` (None: no cluster, yields None); a local cluster is
    closed on exit. Says where the dashboard is."""
    if spec is None:
        yield None
        return
    kind, value = parse_cluster(spec)
    from distributed import Client, LocalCluster
    cluster = None
    try:
        if kind == "local":
            cluster = LocalCluster(n_workers=value, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            client = Client(value, timeout=30)
    except OSError as err:
        raise ConfigError(f"--cluster {spec}: cannot reach the scheduler ({err})") from None
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        link = client.dashboard_link if _has_dashboard() else "none (pip install bokeh for the dashboard)"
        note(f"cluster {spec}: {workers} workers, dashboard {link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _has_dashboard() -> bool:
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None


def _on_worker(fn, *args):
    """Run ``fn(*args)`` on a worker; returns (its result, the worker's address)."""
    from distributed import get_worker
    return fn(*args), get_worker().address


def _busy_seconds(result) -> float:
    """A task's own seconds: the result itself, its ``seconds`` item, or 0 (not timed)."""
    if isinstance(result, float):
        return result
    return float(result.get("seconds", 0.0)) if isinstance(result, dict) else 0.0


def map_ordered(client, fn, arg_lists: list[list], throughput: dict) -> Iterator:
    """``fn`` over the zipped ``arg_lists`` as cluster tasks; yields the results in order and
    fills ``throughput`` with the wall time and each worker's events and busy seconds
    (``_busy_seconds``)."""
    t0 = time.perf_counter()
    futures = client.map(_on_worker, [fn] * len(arg_lists[0]), *arg_lists, pure=False)
    per_worker: dict[str, list[float]] = defaultdict(list)
    try:
        for future in futures:
            result, worker = future.result()
            per_worker[worker].append(_busy_seconds(result))
            # kept up to date at each result: a consumer may stop at the last one it needs
            throughput.update({"wall": time.perf_counter() - t0,
                               "workers": {w: {"events": len(s), "seconds": sum(s)} for w, s in per_worker.items()}})
            yield result
    finally:
        client.cancel(futures)


def throughput_line(stage: str, throughput: dict) -> str:
    """One line: events per second over the cluster, and each worker's share."""
    events = sum(w["events"] for w in throughput["workers"].values())
    parts = [f"{w.rsplit('/', 1)[-1]}: {v['events']} events, {v['events'] / v['seconds']:.1f}/s busy"
             if v["seconds"] > 0 else f"{w}: {v['events']} events" for w, v in sorted(throughput["workers"].items())]
    return (f"{stage}: {events} events on {len(throughput['workers'])} workers, "
            f"{events / max(throughput['wall'], 1e-9):.1f} events/s ({'; '.join(parts)})")
