"""`tape whatif --grid`: the variants of a run as Ray tasks, like an optimisation's parameter sets.

The recorded inputs go into the object store once (``ray.put``); each task re-runs one variant on
them and returns its events; the driver appends each as a derived run (workers never write the log).
Variants already in the log are read back, not run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tape.actors.jobs import ensure_ray, shipped_code
from tape.events.schema import Event
from tape.store.whatif import (
    Change,
    Inputs,
    Loader,
    Variant,
    WhatIfOutcome,
    logged_variant,
    prepare,
    record,
    variant_events,
)


def _variant_task(inputs: Inputs, variant: Variant, code: Sequence[Any]) -> list[Event]:
    """One variant's events, in a worker: ``inputs`` arrive from the object store."""
    if code:
        from tape.store.strategy_loader import install_codes

        install_codes(list(code))
    return variant_events(variant._replace(inputs=inputs))


def run_grid(
    log_path: Path,
    run: str,
    changes: Sequence[Change],
    *,
    data_path: Path | None,
    address: str | None = None,
    loader: Loader | None = None,
) -> list[WhatIfOutcome]:
    """Every change of ``changes`` applied to ``run``, each a derived run computed in a Ray task; the
    outcomes in the order of ``changes``."""
    variants = [prepare(log_path, run, c, data_path=data_path, loader=loader) for c in changes]
    stored = {v.run_id: logged_variant(log_path, v.run_id) for v in variants}
    todo = [v for v in variants if not stored[v.run_id]]
    computed: dict[str, list[Event]] = {}
    if todo:
        ray = ensure_ray(address)
        task = ray.remote(num_cpus=1)(_variant_task)
        # The inputs (bars and the model) are shared by every variant: in the object store once.
        inputs_ref = ray.put(todo[0].inputs)
        futures = {v.run_id: task.remote(inputs_ref, _light(v), shipped_code(v.config)) for v in todo}
        computed = {run_id: list(ray.get(future)) for run_id, future in futures.items()}
    out = []
    for v in variants:
        events = stored[v.run_id] or computed[v.run_id]
        out.append(record(log_path, v, events, duplicate=bool(stored[v.run_id])))
    return out


def _light(variant: Variant) -> Variant:
    """The variant as a task gets it: without the inputs (an object-store reference instead) and the
    origin's events (the driver compares)."""
    return variant._replace(inputs=None, origin_events=[])
