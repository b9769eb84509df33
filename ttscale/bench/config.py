"""The one resolved description of a bench run: what to run (the grid) and how (model, sampling).

Recipes (YAML) and CLI flags both become a `BenchConfig`, validated field by field here, so a typo
fails before a model loads, with the field's path and the fix. The config's hash pins a records folder
to one setup: a changed config in the same folder is refused, so records from two setups never mix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ttscale.errors import TTScaleError

# Backend options that change speed, never results: they stay out of the hash.
EXECUTION_BACKEND_OPTIONS = frozenset({"threads", "verbose", "gpu_memory_utilization", "max_batch", "timeout_s",
                                       "retries", "max_concurrency"})
DEFAULT_MAX_INFLIGHT = 256


@dataclass(frozen=True)
class DatasetSpec:
    """Which problems: a registered set, optionally filtered to levels and cut to the first `limit`."""

    name: str
    limit: int | None = None
    levels: tuple[int, ...] | None = None
    n: int | None = None  # generated sets (arith): how many to generate
    seed: int = 0  # generated sets: which problems
    data_dir: str | None = None  # where file sets live; not hashed (the checksum pins the content)
    split: str | None = None  # sets with splits (arith: train | heldout); None = the set's default
    offset: int = 0  # skip the first `offset` problems (after the levels filter, before `limit`)

    def load_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"limit": self.limit, "levels": list(self.levels) if self.levels else None,
                              "seed": self.seed, "data_dir": self.data_dir}
        if self.offset:
            kw["offset"] = self.offset
        if self.n is not None:
            kw["n"] = self.n
        if self.split is not None:
            kw["split"] = self.split
        return kw


@dataclass(frozen=True)
class SamplingSpec:
    temperature: float = 0.8
    top_p: float = 1.0
    max_tokens: int | None = None  # per candidate; None = the model's default
    stop: tuple[str, ...] = ()
    system_prompt: str | None = None


@dataclass(frozen=True)
class StrategySpec:
    """One line of the grid: `label` names it in records and plots, `strategy` is the registered name."""

    label: str
    strategy: str
    options: Mapping[str, Any] = field(default_factory=dict)
    budgets: tuple[int, ...] | None = None  # this line's own budgets (e.g. beam needs budget >= beam_width)


@dataclass(frozen=True)
class BenchConfig:
    dataset: DatasetSpec
    strategies: tuple[StrategySpec, ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    model: str | None = None
    backend: str = "llamacpp"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    verifier: str | None = None  # default process verifier of step-level strategies
    verifier_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sampling: SamplingSpec = SamplingSpec()
    subsample_best_of_n: bool = True  # derive small-N best-of-N records from one large-N run
    max_inflight: int = DEFAULT_MAX_INFLIGHT  # candidates the scheduler keeps in flight (speed only)
    log_samples: bool = False  # keep every candidate's text in the records (size, not results: not hashed)
    name: str | None = None
    description: str | None = None

    # -- identity ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form: what the manifest records and a recipe could be rebuilt from."""
        d = asdict(self)
        d["strategies"] = {s.label: {"strategy": s.strategy, **dict(s.options),
                                     **({"budgets": list(s.budgets)} if s.budgets else {})} for s in self.strategies}
        return _plain(d)

    def hashed_view(self) -> dict[str, Any]:
        """The fields that decide what the records contain (not names, paths or speed settings)."""
        d = self.to_dict()
        for key in ("name", "description", "max_inflight", "log_samples"):
            d.pop(key)
        d["dataset"].pop("data_dir")
        if d["dataset"].get("split") is None:  # runs made before splits existed keep their hash
            d["dataset"].pop("split", None)
        if not d["dataset"].get("offset"):  # likewise for offsets
            d["dataset"].pop("offset", None)
        d["backend_options"] = {k: v for k, v in d["backend_options"].items() if k not in EXECUTION_BACKEND_OPTIONS}
        return d

    def config_hash(self) -> str:
        return _digest(self.hashed_view())

    def settings_hash(self) -> str:
        """The hash without the grid's extent (strategies, budgets, seeds, limit, n): a record made under
        one settings hash stays valid when only the grid grows or shrinks (strategy options are compared
        label by label, apart)."""
        d = self.hashed_view()
        for key in ("budgets", "seeds", "strategies"):
            d.pop(key)
        d["dataset"].pop("limit")
        d["dataset"].pop("n")
        d["dataset"].pop("offset", None)  # which problems, like limit: each record names its own
        return _digest(d)

    def budgets_for(self, spec: StrategySpec) -> tuple[int, ...]:
        return spec.budgets or self.budgets

    def strategy(self, label: str) -> StrategySpec:
        return next(s for s in self.strategies if s.label == label)

    def options_for(self, spec: StrategySpec) -> dict[str, Any]:
        """Strategy options as the strategy sees them: the top-level verifier fills in `verifier` for the
        strategies that take one."""
        from ttscale.strategies.options import fields_of, options_class

        opts = dict(spec.options)
        cls = options_class(spec.strategy)
        if self.verifier and (cls is None or "verifier" in fields_of(cls)):
            opts.setdefault("verifier", self.verifier)
        return opts


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- validation ---------------------------------------------------------------------------------------------

TOP_FIELDS = ("name", "description", "model", "backend", "backend_options", "verifier", "verifier_options",
              "dataset", "strategies", "budgets", "seeds", "sampling", "subsample_best_of_n", "max_inflight",
              "log_samples")
DATASET_FIELDS = ("name", "limit", "levels", "n", "seed", "data_dir", "split", "offset")
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "system_prompt")


class Fields:
    """Reads one mapping of a recipe, naming the path of anything wrong (`sampling.max_tokens`)."""

    def __init__(self, data: Any, where: str, path: str, allowed: tuple[str, ...]) -> None:
        self.where, self.path = where, path
        if not isinstance(data, Mapping):
            raise self.error(path or "the recipe", f"must be a mapping, got {_kind(data)}", "write key: value pairs")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.error(self.at(str(unknown[0])), "is not a known field",
                             f"{hint}valid fields here: {', '.join(allowed)}")
        self.data = data

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, path: str, problem: str, fix: str) -> TTScaleError:
        return TTScaleError(f"{self.where}: {path} {problem}", fix)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, default: str | None = None) -> str | None:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, str) or not v.strip():
            raise self.error(self.at(key), f"must be a non-empty string, got {_kind(v)} {v!r:.40}", "quote it")
        return v

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        v = self.data.get(key)
        if v is None:
            return default
        if not _is_int(v) or (minimum is not None and v < minimum):
            need = "a positive integer" if minimum == 1 else ("a non-negative integer" if minimum == 0 else "an integer")
            raise self.error(self.at(key), f"must be {need}, got {v!r:.40}", f"write e.g. {key}: {max(minimum or 0, 1)}")
        return v

    def number(self, key: str, default: float, *, low: float, high: float, open_low: bool = False) -> float:
        v = self.data.get(key)
        if v is None:
            return default
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (v > low if open_low else v >= low) and v <= high
        if not ok:
            rng = f"{'(' if open_low else '['}{low}, {high}]"
            raise self.error(self.at(key), f"must be a number in {rng}, got {v!r:.40}", f"write e.g. {key}: {default}")
        return float(v)

    def flag(self, key: str, default: bool) -> bool:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(self.at(key), f"must be true or false, got {v!r:.40}", f"write {key}: true")
        return v

    def int_list(self, key: str, *, minimum: int, required: bool = False) -> tuple[int, ...] | None:
        v = self.data.get(key)
        if v is None:
            if required:
                raise self.error(self.at(key), "is missing", f"add e.g. {key}: [1, 4, 16]")
            return None
        items = [v] if _is_int(v) else v
        what = "positive integers" if minimum == 1 else "non-negative integers"
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, (list, tuple)) or not items:
            raise self.error(self.at(key), f"must be a non-empty list of {what}, got {v!r:.60}", f"write e.g. {key}: [1, 4]")
        for i, x in enumerate(items):
            if not _is_int(x) or x < minimum:
                raise self.error(f"{self.at(key)}[{i}]", f"must be one of the {what}, got {x!r:.40}",
                                 f"write e.g. {key}: [1, 4]")
        return tuple(sorted(set(items)))

    def mapping(self, key: str) -> dict[str, Any]:
        v = self.data.get(key)
        if v is None:
            return {}
        if not isinstance(v, Mapping):
            raise self.error(self.at(key), f"must be a mapping, got {_kind(v)}", f"write {key}: {{name: value}}")
        return {str(k): val for k, val in v.items()}


def config_from_mapping(data: Any, where: str = "recipe") -> BenchConfig:
    """Validate a recipe (already parsed from YAML) into a BenchConfig; every error names the field."""
    top = Fields(data, where, "", TOP_FIELDS)
    if not top.has("dataset"):
        raise top.error("dataset", "is missing", "add dataset: {name: arith} (or math500, gsm8k, ...)")
    ds_raw = top.data["dataset"]
    ds = Fields({"name": ds_raw} if isinstance(ds_raw, str) else ds_raw, where, "dataset", DATASET_FIELDS)
    dataset = DatasetSpec(
        name=ds.text("name") or _missing(ds, "name", "name: math500"),
        limit=ds.integer("limit", minimum=1),
        levels=ds.int_list("levels", minimum=0),
        n=ds.integer("n", minimum=1),
        seed=ds.integer("seed", 0, minimum=0) or 0,
        data_dir=ds.text("data_dir"),
        split=ds.text("split"),
        offset=ds.integer("offset", 0, minimum=0) or 0,
    )
    sp = Fields(top.data.get("sampling") or {}, where, "sampling", SAMPLING_FIELDS)
    stop = sp.data.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise sp.error("sampling.stop", f"must be a list of non-empty strings, got {stop!r:.60}", 'write e.g. stop: ["\\n\\n\\n"]')
    sampling = SamplingSpec(
        temperature=sp.number("temperature", 0.8, low=0.0, high=5.0),
        top_p=sp.number("top_p", 1.0, low=0.0, high=1.0, open_low=True),
        max_tokens=sp.integer("max_tokens", minimum=1),
        stop=tuple(stop),
        system_prompt=sp.text("system_prompt"),
    )
    verifier_options = top.mapping("verifier_options")
    for name, opts in verifier_options.items():
        if not isinstance(opts, Mapping):
            raise top.error(f"verifier_options.{name}", f"must be a mapping of options, got {_kind(opts)}",
                            f"write verifier_options: {{{name}: {{model: ...}}}}")
    return BenchConfig(
        dataset=dataset,
        strategies=parse_strategies(top, top.data.get("strategies")),
        budgets=top.int_list("budgets", minimum=1, required=True) or (),
        seeds=top.int_list("seeds", minimum=0) or (0,),
        model=top.text("model"),
        backend=top.text("backend", "llamacpp") or "llamacpp",
        backend_options=top.mapping("backend_options"),
        verifier=top.text("verifier"),
        verifier_options={k: dict(v) for k, v in verifier_options.items()},
        sampling=sampling,
        subsample_best_of_n=top.flag("subsample_best_of_n", True),
        max_inflight=top.integer("max_inflight", DEFAULT_MAX_INFLIGHT, minimum=1) or DEFAULT_MAX_INFLIGHT,
        log_samples=top.flag("log_samples", False),
        name=top.text("name"),
        description=top.text("description"),
    )


def parse_strategies(top: Fields, raw: Any) -> tuple[StrategySpec, ...]:
    """`[best_of_n, particle]`, or `{label: {strategy: name, option: value}}`, or a list mixing both."""
    if raw is None:
        raise top.error("strategies", "is missing", "add e.g. strategies: [best_of_n, particle]")
    if isinstance(raw, str):
        raw = [s.strip() for s in raw.split(",") if s.strip()]
    entries: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        entries = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            if isinstance(item, str):
                entries.append((item, None))
            elif isinstance(item, Mapping) and len(item) == 1:
                [(k, v)] = item.items()
                entries.append((str(k), v))
            else:
                raise top.error(f"strategies[{i}]", f"must be a name or {{label: {{options}}}}, got {item!r:.60}",
                                "write e.g. strategies: [best_of_n, {beam: {beam_width: 4}}]")
    if not entries:
        raise top.error("strategies", "must name at least one strategy", "add e.g. strategies: [best_of_n]")
    specs: list[StrategySpec] = []
    for label, opts in entries:
        if not label.strip() or "|" in label:
            raise top.error("strategies", f"has an invalid label {label!r}", "use a plain name such as best_of_n")
        if opts is None:
            opts = {}
        if not isinstance(opts, Mapping):
            raise top.error(f"strategies.{label}", f"must be a mapping of options, got {_kind(opts)}",
                            f"write {label}: {{beam_width: 4}} or just list the name")
        opts = {str(k): v for k, v in opts.items()}
        own = Fields({"budgets": opts.pop("budgets", None)}, top.where, f"strategies.{label}", ("budgets",))
        budgets = own.int_list("budgets", minimum=1)
        name = opts.pop("strategy", label)
        if not isinstance(name, str) or not name:
            raise top.error(f"strategies.{label}.strategy", f"must be a strategy name, got {name!r:.40}",
                            "write strategy: best_of_n")
        if any(s.label == label for s in specs):
            raise top.error("strategies", f"lists {label!r} twice", "give the second one another label and strategy: NAME")
        specs.append(StrategySpec(label=label, strategy=name, options=opts, budgets=budgets))
    return tuple(specs)


def _missing(f: Fields, key: str, example: str) -> Any:
    raise f.error(f.at(key), "is missing", f"add {example}")


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(v), type(v).__name__)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
