"""Scale-out: problems sharded over Ray actors, each owning one engine, results streamed to the driver.

Each actor runs its shard through its own `GridExecutor` (the same batching as a local run) and yields
each finished item as it completes (a Ray streaming generator), so the driver appends records to the
same folder as they arrive and a killed run resumes exactly like a local one. On a GPU cluster each
actor takes one GPU; on CPUs each takes `cpus_per_actor` cores (llama.cpp and transformers get that many threads).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from eval_sets import Problem
from ttscale.bench.config import BenchConfig, config_from_mapping
from ttscale.bench.executor import Finished
from ttscale.bench.grid import WorkItem
from ttscale.errors import TTScaleError


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: start a local Ray instance
    actors: int | None = None  # default: one per GPU, else one per `cpus_per_actor` cores
    cpus_per_actor: int = 1
    gpus_per_actor: float | None = None  # default: 1 when the cluster has GPUs, else 0


def build_engine(config: BenchConfig, **extra: Any) -> Any:
    """The engine a config describes (also used by local runs). API keys come from the environment only,
    so they never land in a manifest."""
    from ttscale.engine import Engine

    opts = {**dict(config.backend_options), **extra}
    if config.backend == "openai" and os.environ.get("TTSCALE_API_KEY"):
        opts.setdefault("api_key", os.environ["TTSCALE_API_KEY"])
    return Engine(backend=config.backend, model=config.model,
                  verifier_options={k: dict(v) for k, v in config.verifier_options.items()}, **opts)


class BenchWorker:
    """The body of one Ray actor: one engine, and a generator over its shard's finished items."""

    def __init__(self, config: dict[str, Any], backend_extra: dict[str, Any]) -> None:
        self.config = config_from_mapping(config, where="ray worker config")
        self.error: TTScaleError | None = None
        try:
            self.engine = build_engine(self.config, **backend_extra)
        except TTScaleError as e:  # raised again from ready(): a task error keeps its cause, a dead actor does not
            self.error = e

    def ready(self) -> str:
        if self.error is not None:
            raise self.error
        return f"{os.uname().nodename}:{os.getpid()}"

    def run(self, problems: list[dict[str, Any]], items: list[WorkItem]) -> Iterator[Finished]:
        from ttscale.bench.executor import GridExecutor

        executor = GridExecutor(self.engine, self.config, [Problem.from_dict(p) for p in problems])
        yield from executor.run(items)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TTScaleError("--ray needs Ray, which is not installed", "pip install 'ttscale[ray]'") from None
    return ray


class RayExecutor:
    """Starts (or joins) a Ray cluster, one actor per shard, and streams `Finished` items back."""

    def __init__(self, config: BenchConfig, problems: list[Problem], settings: RaySettings,
                 log: Callable[[str], None], on_ready: Callable[[], None] | None = None) -> None:
        self.config = config
        self.on_ready = on_ready
        self.problems = problems
        self.settings = settings
        self.log = log
        self.actors_started = 0
        self.setup_seconds = 0.0

    def _init(self, ray: Any) -> bool:
        """Connect; returns whether this call started Ray (and so must stop it)."""
        if ray.is_initialized():
            return False
        kw: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.settings.address:
                ray.init(address=self.settings.address, **kw)
            else:
                want = (self.settings.actors or 1) * self.settings.cpus_per_actor
                ray.init(num_cpus=max(os.cpu_count() or 1, want), include_dashboard=False, **kw)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            where = self.settings.address or "a local instance"
            raise TTScaleError(f"cannot start or reach Ray at {where} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                               "check --ray-address (e.g. ray://HEAD:10001 or HEAD:6379) and that the cluster is up") from None
        return True

    def _plan_actors(self, ray: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
        res = ray.cluster_resources()
        gpus = self.settings.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if res.get("GPU", 0) >= 1 else 0.0
        cpus = self.settings.cpus_per_actor
        if self.settings.actors:
            n = self.settings.actors
        elif gpus:
            n = int(res.get("GPU", 0) // gpus)
        else:
            n = int(res.get("CPU", 1) // cpus)
        n = max(1, min(n, len({p.id for p in self.problems})))
        extra: dict[str, Any] = {}
        if self.config.backend in ("llamacpp", "transformers") and "threads" not in self.config.backend_options:
            extra["threads"] = cpus
        return n, {"num_cpus": cpus, "num_gpus": gpus}, extra

    def stream(self, items: list[WorkItem]) -> Iterator[Finished]:
        ray = _import_ray()
        t0 = time.perf_counter()
        started = self._init(ray)
        try:
            n, resources, extra = self._plan_actors(ray)
            remote_cls = ray.remote(**resources)(BenchWorker)
            actors = [remote_cls.remote(self.config.to_dict(), extra) for _ in range(n)]
            hosts = self._get(ray, [a.ready.remote() for a in actors])
            self.actors_started = n
            self.setup_seconds = time.perf_counter() - t0
            self.log(f"ray: {n} actor(s) ready in {self.setup_seconds:.1f} s ({', '.join(hosts)}); "
                     f"{resources['num_cpus']} CPU, {resources['num_gpus']:g} GPU each")
            if self.on_ready:
                self.on_ready()
            order = {p.id: i for i, p in enumerate(self.problems)}
            by_problem = {p.id: p for p in self.problems}
            shards: list[list[WorkItem]] = [[] for _ in range(n)]
            for item in items:  # round-robin by problem: each problem's cells share one actor's cache
                shards[order[item.problem_id] % n].append(item)
            gens = []
            for actor, shard in zip(actors, shards):
                if shard:
                    ids = list(dict.fromkeys(i.problem_id for i in shard))
                    payload = [by_problem[i].to_dict() for i in ids]
                    gens.append(actor.run.options(num_returns="streaming").remote(payload, shard))
            live = list(gens)
            while live:
                ready, _ = ray.wait(live, num_returns=1, timeout=None)
                for gen in ready:
                    try:
                        ref = next(gen)
                    except StopIteration:
                        live.remove(gen)
                        continue
                    yield self._get(ray, ref)
        finally:
            if started:
                ray.shutdown()

    def _get(self, ray: Any, ref: Any) -> Any:
        """ray.get, turning a worker's TTScaleError back into itself and anything else into one line."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, TTScaleError):
                raise TTScaleError(cause.problem, cause.fix) from None
            raise
        except ray.exceptions.RayActorError as e:
            raise TTScaleError(f"a Ray bench actor died ({str(e).splitlines()[0]})",
                               "check the workers' memory and logs; rerun the command to resume") from None
