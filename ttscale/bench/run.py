"""`run_bench`: everything `ttscale bench` does, in the order that fails fastest.

Names are checked against the registries, the dataset is loaded and checksummed and the output folder
claimed (manifest written) before any model loads; then only the missing cells run, locally through one
engine or over Ray actors, and each finished cell's records are appended as it arrives.
"""

from __future__ import annotations

import shlex
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console

from eval_sets import Problem, dataset_checksum, load
from ttscale.bench.config import BenchConfig
from ttscale.bench.executor import Finished, GridExecutor
from ttscale.bench.grid import WorkItem, grid_keys, plan
from ttscale.bench.manifest import build_manifest, claim_folder, prepare_folder, record_summary
from ttscale.bench.progress import BenchProgress
from ttscale.bench.ray_exec import RayExecutor, RaySettings, build_engine
from ttscale.bench.records import FolderLock, RecordStore
from ttscale.progress import watch_backend


@dataclass
class BenchSummary:
    folder: Path
    action: str  # new | resume | extend | superseded
    cells_total: int
    cells_before: int
    cells_written: int = 0
    generated_tokens: int = 0
    wall_seconds: float = 0.0  # the whole command
    run_seconds: float = 0.0  # from the first item started to the last record written (no model load)
    actors: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}

    def interrupted_line(self, records: Path, argv: list[str] | None) -> str:
        """What a Ctrl-C kept, and how to go on: every finished cell is on disk, a rerun does the rest."""
        again = f": ttscale {shlex.join(argv)}" if argv else ""
        return (f"interrupted: kept {self.cells_before + self.cells_written}/{self.cells_total} records in {records} "
                f"({self.cells_written} new); rerun the same command to resume{again}")

    def line(self) -> str:
        where = f" on {self.actors} Ray actor(s)" if self.actors else ""
        return (f"{self.folder}: {self.cells_before + self.cells_written}/{self.cells_total} records "
                f"({self.cells_written} new{where}); {self.generated_tokens} tokens generated; "
                f"{self.run_seconds:.1f} s running, {self.wall_seconds:.1f} s in all")


def check_names(config: BenchConfig) -> None:
    """Every registry name the run will use, so a typo fails before a model loads."""
    from eval_sets.registry import get_loader
    from ttscale.backends import backends
    from ttscale.scoring import scorers
    from ttscale.strategies import strategies
    from ttscale.errors import TTScaleError
    from ttscale.strategies.aggregate import check_aggregation
    from ttscale.strategies.options import options_class, parse_options

    get_loader(config.dataset.name)
    backends.get(config.backend)
    for spec in config.strategies:
        strategies.get(spec.strategy)
        opts = config.options_for(spec)
        try:
            parse_options(spec.strategy, options_class(spec.strategy), opts)
        except TTScaleError as e:
            raise TTScaleError(f"strategies.{spec.label}: {e.problem}", e.fix) from None
        if "aggregate" in opts:
            check_aggregation(opts["aggregate"])
        for key in ("verifier", "scorer"):
            if opts.get(key) not in (None, "none", "logprob"):
                scorers.get(str(opts[key]))


def probe_budgets(config: BenchConfig) -> None:
    """Start every strategy at each of its budgets on a dummy task (no model): option and budget errors,
    such as a beam budget below the beam width, surface now instead of halfway through a run."""
    import numpy as np

    from ttscale.errors import TTScaleError
    from ttscale.requests import Sampling
    from ttscale.strategies import strategies
    from ttscale.strategies.base import Task

    for spec in config.strategies:
        fn = strategies.get(spec.strategy)
        options = {"step_delimiter": "\n\n", **config.options_for(spec)}
        for budget in config.budgets_for(spec):
            task = Task(problem="1 + 1", prompt_ids=(1, 2, 3), budget=budget, rng=np.random.default_rng(0),
                        sampling=Sampling(max_tokens=config.sampling.max_tokens or 64), extract=lambda text: None,
                        cluster=lambda answers: [None] * len(answers), options=options,
                        render=lambda messages: (1, 2, 3), messages=(("user", "1 + 1"),))  # as if chat
            gen = fn(task)
            try:
                next(gen)
            except StopIteration:
                pass
            except TTScaleError as e:
                raise TTScaleError(
                    f"strategy {spec.label} cannot run at budget {budget}: {e.problem}",
                    f"give it its own budgets in the recipe (strategies: {{{spec.label}: {{budgets: [...]}}}}), "
                    f"drop {budget} from --budgets, or change its options") from None
            except Exception:  # noqa: BLE001 - a dummy task cannot do everything; the real run will tell
                pass
            finally:
                gen.close()


def load_problems(config: BenchConfig) -> tuple[list[Problem], str]:
    kwargs = config.dataset.load_kwargs()
    problems = load(config.dataset.name, **kwargs)
    return problems, dataset_checksum(config.dataset.name, **kwargs)


def run_bench(config: BenchConfig, out: str | Path, *, force: bool = False, ray: RaySettings | None = None,
              engine: Any = None, checker: Any = None, console: Console | None = None, progress: bool = True,
              argv: list[str] | None = None) -> BenchSummary:
    """Run (or resume) the grid of `config` into folder `out`. `engine`/`checker`: bring your own (tests)."""
    t0 = time.perf_counter()
    console = console or Console(stderr=True, highlight=False, soft_wrap=True)
    log: Callable[[str], None] = lambda msg: console.print(msg, markup=False, highlight=False)  # noqa: E731
    check_names(config)
    probe_budgets(config)
    problems, checksum = load_problems(config)
    folder = prepare_folder(Path(out))
    with FolderLock(folder):
        action = claim_folder(folder, build_manifest(config, checksum, problems), force=force, argv=argv)
        with RecordStore(folder) as store:
            for msg in store.report.messages(store.path):
                log(msg)
            wanted = grid_keys(config, problems)
            summary = BenchSummary(folder, action, len(wanted), len(wanted & store.done))
            items = plan(config, problems, store.done)
            if not items:
                log(f"{folder}: all {len(wanted)} records are there; nothing to run")
                summary.wall_seconds = time.perf_counter() - t0
                record_summary(folder, summary.to_dict())
                return summary
            log(f"{folder}: {action}; {summary.cells_before}/{len(wanted)} records present, "
                f"{len(items)} runs to do")
            try:
                _execute(config, problems, items, store, summary, ray=ray, engine=engine, checker=checker,
                         console=console, progress=progress, log=log, t0=t0)
            except KeyboardInterrupt:
                log(summary.interrupted_line(store.path, argv))
                raise
    return summary


def _execute(config: BenchConfig, problems: list[Problem], items: list[WorkItem], store: RecordStore,
             summary: BenchSummary, *, ray: RaySettings | None, engine: Any, checker: Any, console: Console,
             progress: bool, log: Callable[[str], None], t0: float) -> None:
    """Run `items` (locally or on Ray), appending each finished run's records to `store` at once."""
    finished: Iterator[Finished]
    watching = ExitStack()
    t_exec = time.perf_counter()
    if ray is not None:
        bar = BenchProgress(items, console, enabled=progress)
        executor = RayExecutor(config, problems, ray, log, on_ready=bar.restart_clock)
        finished = executor.stream(items)
    else:
        eng = build_engine(config) if engine is None else engine
        t_exec = time.perf_counter()  # the model is loaded: the run starts now
        bar = BenchProgress(items, console, enabled=progress)
        # Tokens and samples as the backend produces them; per round only where it cannot report them.
        live = watching.enter_context(watch_backend(eng.backend, bar.on_backend))
        local = GridExecutor(eng, config, problems, checker=checker, on_tokens=None if live else bar.add_tokens)
        finished = local.run(items)
    try:
        for done in finished:
            summary.cells_written += store.append(done.records)
            summary.generated_tokens += done.generated_tokens
            bar.item_done(done.item, len(done.records), tokens=done.generated_tokens if ray else None)
    finally:
        if hasattr(finished, "close"):
            finished.close()  # stops Ray workers and shuts Ray down on error or Ctrl-C
        watching.close()
        bar.close()
        if ray is None and engine is None:
            eng.close()
        summary.run_seconds = time.perf_counter() - t_exec
        if ray is not None:
            summary.actors = executor.actors_started
            summary.run_seconds -= executor.setup_seconds  # Ray start and model loads
        summary.wall_seconds = time.perf_counter() - t0
        record_summary(store.folder, summary.to_dict())
