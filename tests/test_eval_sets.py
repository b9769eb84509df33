"""eval_sets: the real files load with the right counts, filters work, and every failure is one clear line."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import FrozenInstanceError
from importlib import metadata
from pathlib import Path

import pytest

from eval_sets import Problem, dataset_checksum, list_datasets, load, register_dataset, resolve_data_dir
from eval_sets import hub, registry
from eval_sets.datadir import ENV_VAR
from eval_sets.loaders import FILES, read_jsonl
from ttscale.errors import TTScaleError

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gsm8k": 1319}
MATH500_LEVELS = {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}  # from shared/eval_sets/PROVENANCE.md
# Canonical-JSON checksum of the full math500 set; changes only if the data or Problem.to_dict change,
# and then every bench manifest recorded so far stops matching, so it must be a deliberate change.
MATH500_CHECKSUM = "eebdf03c8c7f72c58b63459ee542522e079aae98d66bb1d183ca740e58a236bf"
GOOD = {"id": "t-1", "problem": "What is 1+1?", "answer": "2"}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    d = resolve_data_dir(None) or REPO.parent / "shared" / "eval_sets"
    missing = [f for f in FILES.values() if not (d / f).is_file()]
    if missing:
        pytest.skip(f"evaluation data not in {d} (set {ENV_VAR}); missing {', '.join(missing)}")
    return d


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No data dir from the environment and no hub: only explicit data dirs work."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(hub, "unavailable_reason", lambda: "offline in tests")


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private copy of the registry and no installed plugins, so tests can register freely."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PLUGINS", None)
    monkeypatch.setattr(registry, "_entry_points", lambda: [])


def write_jsonl(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


# -- the real sets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_real_sets_load_with_expected_counts(name: str, data_dir: Path, offline: None) -> None:
    problems = load(name, data_dir=data_dir)
    assert len(problems) == COUNTS[name]
    assert len({p.id for p in problems}) == len(problems), "ids must be unique"
    for p in problems:
        assert isinstance(p, Problem)
        assert p.problem.strip() and p.answer.strip() and p.answer == p.answer.strip()
        assert p.source and (p.level is None) == (name != "math500")


def test_schema_details(data_dir: Path, offline: None) -> None:
    aime = load("aime24", data_dir=data_dir)
    assert aime[0].id == "2024-I-1" and aime[0].answer == "204"
    assert aime[0].extra["upstream_id"] == 60 and aime[0].extra["url"].startswith("https://")
    assert load("aime25", data_dir=data_dir)[0].extra == {"has_figure_code": False}
    gsm = load("gsm8k", data_dir=data_dir)[0]
    assert (gsm.id, gsm.answer) == ("gsm8k-test-0", "18") and gsm.solution.endswith("#### 18")
    m = load("math500", data_dir=data_dir)[0]
    assert m.id == "test/precalculus/807.json" and m.subject == "Precalculus" and m.level == 2


def test_env_var_is_used_and_flag_beats_it(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           offline: None) -> None:
    monkeypatch.setenv(ENV_VAR, str(data_dir))
    assert len(load("amc23")) == 40
    monkeypatch.setenv(ENV_VAR, str(tmp_path))  # empty dir: only the flag can make this work
    assert len(load("amc23", data_dir=data_dir)) == 40
    with pytest.raises(TTScaleError, match=f"{ENV_VAR}="):
        load("amc23")


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv(ENV_VAR, "/from/env")
    assert resolve_data_dir(None) == Path("/from/env")
    assert resolve_data_dir("") == Path("/from/env")
    assert resolve_data_dir(tmp_path) == tmp_path
    assert resolve_data_dir(str(tmp_path)) == tmp_path


# -- levels, limit, n --------------------------------------------------------------------------------


def test_levels_filter_math500(data_dir: Path, offline: None) -> None:
    for level, count in MATH500_LEVELS.items():
        got = load("math500", data_dir=data_dir, levels=[level])
        assert len(got) == count and {p.level for p in got} == {level}
    hard = load("math500", data_dir=data_dir, levels=(4, 5))
    assert len(hard) == MATH500_LEVELS[4] + MATH500_LEVELS[5]
    full = load("math500", data_dir=data_dir)
    assert hard == [p for p in full if p.level in (4, 5)], "filtering keeps file order"


def test_limit_takes_first_n_after_filtering(data_dir: Path, offline: None) -> None:
    full = load("gsm8k", data_dir=data_dir)
    assert load("gsm8k", data_dir=data_dir, limit=7) == full[:7]
    assert len(load("aime24", data_dir=data_dir, limit=1000)) == 30
    lvl5 = load("math500", data_dir=data_dir, levels=[5])
    assert load("math500", data_dir=data_dir, levels=[5], limit=10) == lvl5[:10]


def test_levels_on_a_set_without_levels_is_an_error(data_dir: Path, offline: None) -> None:
    with pytest.raises(TTScaleError, match="'aime24' has no difficulty levels") as e:
        load("aime24", data_dir=data_dir, levels=[3])
    assert "drop levels" in str(e.value)


def test_levels_that_match_nothing_name_the_levels_present(data_dir: Path, offline: None) -> None:
    with pytest.raises(TTScaleError, match=r"no problems at levels \[9\].*1, 2, 3, 4, 5"):
        load("math500", data_dir=data_dir, levels=[9])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": -3}, "limit must be a positive integer"),
        ({"levels": []}, "levels must be a non-empty list"),
        ({"levels": "45"}, "levels must be a list of integers"),
        ({"levels": [4.0]}, "levels must be a non-empty list of integers"),
        ({"n": 5}, "fixed size; n only applies to generated sets"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str, data_dir: Path, offline: None) -> None:
    with pytest.raises(TTScaleError, match=match):
        load("math500", data_dir=data_dir, **kwargs)


# -- malformed files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "match"),
    [
        ('{"id": "t-2", "problem": "x", "answer": "1"', "malformed JSON"),
        ('[1, 2]', "expected a JSON object, got list"),
        ('{"id": "t-2", "problem": "x"}', "missing required field.*answer"),
        ('{"id": "t-2", "problem": "x", "answer": 1.5}', "'answer' must be a string"),
        ('{"id": "t-2", "problem": "x", "answer": "1", "level": "3"}', "'level' must be an integer"),
    ],
)
def test_malformed_jsonl_names_file_and_line(bad_line: str, match: str, tmp_path: Path, offline: None) -> None:
    path = write_jsonl(tmp_path / "math500.jsonl", [GOOD, "", bad_line, GOOD])
    with pytest.raises(TTScaleError, match=match) as e:
        load("math500", data_dir=tmp_path)
    msg = str(e.value)
    assert f"{path}:3:" in msg, "the error points at the file and the line"
    assert e.value.fix and "\n" not in msg


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(TTScaleError, match=r"x\.jsonl:2: not valid UTF-8"):
        read_jsonl(path)


def test_blank_lines_and_integer_ids_are_accepted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", ["", {"id": 7, "problem": "p", "answer": 3, "url": "u"}, "  "])
    [p] = read_jsonl(path)
    assert (p.id, p.answer, p.extra) == ("7", "3", {"url": "u"})


# -- no data ---------------------------------------------------------------------------------------


def test_no_data_dir_and_no_hub_is_one_clear_line(offline: None) -> None:
    with pytest.raises(TTScaleError) as e:
        load("math500")
    msg = str(e.value)
    assert "\n" not in msg
    assert "cannot load math500: no data directory is set" in msg and "offline in tests" in msg
    assert "--data-dir" in e.value.fix and ENV_VAR in e.value.fix and "math500.jsonl" in e.value.fix


def test_data_dir_without_the_file(tmp_path: Path, offline: None) -> None:
    with pytest.raises(TTScaleError, match=f"gsm8k_test.jsonl is not in data dir {tmp_path}.*offline in tests"):
        load("gsm8k", data_dir=tmp_path)


def test_data_dir_that_does_not_exist(tmp_path: Path, offline: None) -> None:
    with pytest.raises(TTScaleError, match="is not a directory"):
        load("aime25", data_dir=tmp_path / "typo")


def test_hub_unavailable_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.unavailable_reason() == "HF_HUB_OFFLINE is set"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hub.importlib.util, "find_spec", lambda name: None)
    assert hub.unavailable_reason() == "the 'datasets' package is not installed"


# -- hub fallback (no network: a stand-in `datasets` module) ----------------------------------------


def fake_datasets(monkeypatch: pytest.MonkeyPatch, rows: list[dict] | Exception) -> list[tuple]:
    calls: list[tuple] = []

    def load_dataset(repo, config=None, *, split, revision):
        calls.append((repo, config, split, revision))
        if isinstance(rows, Exception):
            raise rows
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr(hub, "unavailable_reason", lambda: None)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return calls


def test_hub_fallback_uses_the_pinned_revision_and_maps_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_datasets(monkeypatch, [
        {"question": "Q0?", "answer": "Step <<2*3=6>>6\n#### 1,234"},
        {"question": "Q1?", "answer": "#### 5"},
    ])
    problems = load("gsm8k")
    src = hub.SOURCES["gsm8k"]
    assert calls == [("openai/gsm8k", "main", "test", src.revision)] and len(src.revision) == 40
    assert [(p.id, p.problem, p.answer) for p in problems] == [
        ("gsm8k-test-0", "Q0?", "1234"),
        ("gsm8k-test-1", "Q1?", "5"),
    ]
    assert problems[0].solution.endswith("#### 1,234") and problems[0].source == f"openai/gsm8k@{src.revision}"


def test_hub_failure_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_datasets(monkeypatch, ConnectionError("Couldn't reach\nhuggingface.co"))
    with pytest.raises(TTScaleError, match="could not load aime24 from the Hugging Face hub.*aime_2024@") as e:
        load("aime24")
    assert "\n" not in str(e.value) and "--data-dir" in e.value.fix


AOPS = "https://artofproblemsolving.com/wiki/index.php"


def test_hub_row_mappers_match_the_local_schema() -> None:
    m = hub.SOURCES["math500"].to_row({"problem": "p", "solution": "s", "answer": "a", "subject": "Algebra",
                                       "level": 3, "unique_id": "test/algebra/1.json"}, 0)
    assert (m["id"], m["level"], m["subject"]) == ("test/algebra/1.json", 3, "Algebra")
    a24 = hub.SOURCES["aime24"].to_row({"id": 82, "problem": "p", "solution": "s", "answer": "025", "year": "2024",
                                        "url": f"{AOPS}/2024_AIME_II_Problems/Problem_8"}, 22)
    assert (a24["id"], a24["answer"], a24["upstream_id"]) == ("2024-II-8", "25", 82)
    a25 = [hub.SOURCES["aime25"].to_row({"problem_idx": i, "problem": "p", "answer": 9}, i - 1)
           for i in (1, 15, 16, 30)]
    assert [r["id"] for r in a25] == ["2025-I-1", "2025-I-15", "2025-II-1", "2025-II-15"] and a25[0]["answer"] == "9"
    amc = hub.SOURCES["amc23"].to_row({"id": 0, "question": "q", "answer": 27.0,
                                       "url": f"{AOPS}/2023_AMC_12A_Problems/Problem_1"}, 0)
    assert (amc["id"], amc["problem"], amc["answer"]) == ("2023-12A-1", "q", "27")
    assert hub.SOURCES["amc23"].to_row({"question": "q", "answer": 3.5}, 4)["answer"] == "3.5"


# -- registry --------------------------------------------------------------------------------------


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(TTScaleError, match="unknown dataset 'math-500'") as e:
        load("math-500")
    for name in ("math500", "aime24", "aime25", "amc23", "gsm8k", "arith"):
        assert name in e.value.fix


def test_builtin_names_are_listed() -> None:
    assert {"math500", "aime24", "aime25", "amc23", "gsm8k", "arith"} <= set(list_datasets())


def test_register_custom_dataset(own_registry: None, tmp_path: Path) -> None:
    @register_dataset("tiny")
    def tiny(seed: int) -> list[dict]:  # declares only what it uses; source defaults to the set name
        return [{**GOOD, "id": f"t-{i}", "level": i % 2 + 1, "hint": seed} for i in range(4)]

    assert "tiny" in list_datasets()
    got = load("tiny", seed=5, levels=[2], limit=1)
    assert got == [Problem(id="t-1", problem=GOOD["problem"], answer="2", level=2, source="tiny", extra={"hint": 5})]
    assert load("tiny", data_dir=tmp_path)[0].extra == {"hint": 0}, "arguments a loader does not declare are not passed"
    with pytest.raises(TTScaleError, match="already registered"):
        register_dataset("tiny")(lambda: [])
    register_dataset("tiny", replace=True)(lambda: [GOOD])
    assert [p.id for p in load("tiny")] == ["t-1"]


def test_custom_dataset_with_bad_rows(own_registry: None) -> None:
    register_dataset("broken-rows")(lambda: [GOOD, {"id": "x", "problem": "p"}])
    with pytest.raises(TTScaleError, match="dataset 'broken-rows' row 1: missing required field"):
        load("broken-rows")


def test_entry_point_plugins_are_imported_lazily(own_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []

    def plug_loader() -> list[dict]:
        return [GOOD]

    module = types.ModuleType("ttscale_fake_dataset_plugin")
    module.loader = plug_loader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    eps = [
        metadata.EntryPoint("plugset", f"{module.__name__}:loader", registry.ENTRY_POINT_GROUP),
        metadata.EntryPoint("brokenset", "ttscale_no_such_module_xyz:loader", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: imported.append("scan") or eps)
    assert {"plugset", "brokenset", "math500"} <= set(list_datasets())
    assert [p.source for p in load("plugset")] == ["plugset"]
    assert imported == ["scan"], "entry points are scanned once"
    with pytest.raises(TTScaleError, match="dataset plugin 'brokenset' .* failed to import"):
        load("brokenset")


# -- Problem and checksums ---------------------------------------------------------------------------


def test_problem_record_round_trips_and_is_frozen() -> None:
    p = Problem.from_dict({**GOOD, "level": 2, "url": "u"})
    d = p.to_dict()
    assert list(d)[:7] == ["id", "problem", "answer", "level", "subject", "solution", "source"] and d["url"] == "u"
    assert Problem.from_dict(d) == p and hash(p) == hash(Problem.from_dict(d))
    with pytest.raises(FrozenInstanceError):
        p.answer = "3"  # type: ignore[misc]


def test_checksum_is_stable_and_pinned(data_dir: Path, offline: None) -> None:
    first = dataset_checksum("math500", data_dir=data_dir)
    assert first == dataset_checksum("math500", data_dir=data_dir) == MATH500_CHECKSUM
    assert dataset_checksum("math500", data_dir=data_dir, limit=499) != first
    by_level = {lv: dataset_checksum("math500", data_dir=data_dir, levels=[lv]) for lv in (1, 2)}
    assert by_level[1] != by_level[2]


def test_checksum_ignores_file_formatting(data_dir: Path, tmp_path: Path, offline: None) -> None:
    """Same rows, different key order and spacing: same checksum (it hashes content, not bytes)."""
    rows = [json.loads(line) for line in (data_dir / "aime25.jsonl").read_text(encoding="utf-8").splitlines()]
    write_jsonl(tmp_path / "aime25.jsonl", [json.dumps(dict(reversed(list(r.items()))), indent=None) for r in rows])
    assert dataset_checksum("aime25", data_dir=tmp_path) == dataset_checksum("aime25", data_dir=data_dir)


# -- arith -----------------------------------------------------------------------------------------


def test_arith_through_the_registry(offline: None) -> None:
    pytest.importorskip("eval_sets.arith")
    problems = load("arith", n=25, levels=[1, 4], seed=7)
    assert len(problems) == 25 and {p.level for p in problems} == {1, 4}
    assert all(p.source == "arith" and p.answer.lstrip("-").isdigit() and p.solution for p in problems)
    assert load("arith", n=25, levels=[1, 4], seed=7) == problems, "same seed, same problems"
    assert load("arith", n=25, levels=[1, 4], seed=8) != problems
    assert len(load("arith")) == 100 and {p.level for p in load("arith")} == {1, 2, 3, 4, 5}
    assert load("arith", n=25, levels=[1, 4], seed=7, limit=5) == problems[:5]
    seed1 = dataset_checksum("arith", n=10, seed=1)
    assert seed1 == dataset_checksum("arith", n=10, seed=1) != dataset_checksum("arith", n=10, seed=2)
    with pytest.raises(TTScaleError, match="arith has no level 6"):
        load("arith", levels=[6])
