"""The one place that fans work out with dask.distributed: a LocalCluster by default, or an existing cluster.

Fingerprints, structure matching, CHGNet relaxations and GPAW calculations all go through `fan_out`, so the same code
runs serially (workers=0, for tests and debugging), on a LocalCluster, or on a cluster given by its scheduler address.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2, threads_per_worker: int = 1) -> Iterator[Any]:
    """A `distributed.Client`: connected to `scheduler` (tcp://HOST:PORT) if given, else on a new LocalCluster of
    `workers` processes with `threads_per_worker` threads each. Yields None when workers == 0 and no scheduler
    (the serial path)."""
    if scheduler is None and workers == 0:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fan_out(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    client=None,
    desc: str | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """[fn(item) for item in items], on `client` when given (one task per item), serially otherwise.

    Results come back in input order. `on_result(index, result)` is called as each one finishes (in completion
    order on a cluster), so callers can write results to disk as they arrive and a killed run loses nothing
    already finished. A progress bar shows when `desc` is given.
    """
    items = list(items)
    results: list[Any] = [None] * len(items)
    bar = tqdm(total=len(items), desc=desc, disable=desc is None)
    if client is None:
        for i, item in enumerate(items):
            results[i] = fn(item)
            if on_result is not None:
                on_result(i, results[i])
            bar.update()
    else:
        from distributed import as_completed

        futures = client.map(fn, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            results[i] = future.result()
            if on_result is not None:
                on_result(i, results[i])
            bar.update()
            future.release()
    bar.close()
    return results
