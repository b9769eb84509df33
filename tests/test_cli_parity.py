"""The CLI level with the API and recipes (fast, scripted fake backend; no model loads):

solve: --system-prompt, --stop, problems from --file / stdin (text lines or JSONL) through solve_batch,
--chat-template / --gpu-layers / --tensor-parallel-size / --dtype refused on backends that do not take them;
bench: --prm-model, --opt, --system-prompt, --stop, --offset, a user's JSONL file, --log-samples, each a
recipe field too."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from fakes import ExactChecker, FakeBackend
from ttscale import Engine, TTScaleError
from ttscale.backends.registry import register_backend
from ttscale.bench.config import config_from_mapping
from ttscale.bench.recipe import resolve_config
from ttscale.bench.records import RECORDS_FILE
from ttscale.bench.run import run_bench
from ttscale.cli import main
from ttscale.inputs import parse_problems, unescape

REPO = Path(__file__).resolve().parents[1]


def script(prompt_ids, j, seed):
    """Answers depend on what the prompt holds, so a test can see what reached the model:
    'SYS' in the system message -> 42; 'What is A + B?' -> A+B; then '\\n\\nSTOP' and a wrong answer 9."""
    text = "".join(chr(i) for i in prompt_ids)
    if "<system>SYS" in text:
        return "\\boxed{42}"
    user = text.rsplit("<user>", 1)[-1]
    nums = [int(t) for t in user.replace("?", " ").split() if t.isdigit()]
    value = sum(nums) if nums else 0
    return f"So \\boxed{{{value}}}\n\nSTOP then \\boxed{{9}}"


class Checker(ExactChecker):
    def check_many(self, pairs):
        return [a.strip() == b.strip() for a, b in pairs]


made: list[FakeBackend] = []


@register_backend("scripted_cli")
def _scripted(model=None, **options):
    backend = FakeBackend(script)
    backend.options = options
    made.append(backend)
    return backend


@pytest.fixture(autouse=True)
def exact_checker(monkeypatch):
    import verifiers

    monkeypatch.setattr(verifiers, "get_checker", lambda: Checker())
    made.clear()


def solve(capsys, *args: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(["solve", *args, "--backend", "scripted_cli", "--budget", "2"])
    out, err = capsys.readouterr()
    return rc, out, err


# -- solve ---------------------------------------------------------------------------------------------------


def test_solve_stop_strings_end_each_candidate(capsys):
    rc, out, _ = solve(capsys, "What is 2 + 3?")
    assert rc == 0 and out.strip() == "9"  # the last boxed answer, after the stop point
    rc, out, _ = solve(capsys, "What is 2 + 3?", "--stop", "STOP")
    assert rc == 0 and out.strip() == "5"
    rc, out, _ = solve(capsys, "What is 2 + 3?", "--stop", "\\n\\n")  # typed in a shell: backslash-n
    assert rc == 0 and out.strip() == "5"
    sent = made[-1].calls[0][0].sampling.stop
    assert sent == ("\n\n",)


def test_solve_system_prompt_reaches_the_model(capsys):
    rc, out, _ = solve(capsys, "What is 2 + 3?", "--system-prompt", "SYS: answer briefly", "--stop", "STOP")
    assert rc == 0 and out.strip() == "42"
    prompt = "".join(chr(i) for i in made[-1].calls[0][0].prompt_ids)
    assert prompt.startswith("<system>SYS: answer briefly<user>")


def test_solve_problems_from_a_file_one_per_line(capsys, tmp_path):
    path = tmp_path / "problems.txt"
    path.write_text("What is 1 + 1?\n\nWhat is 2 + 5?\nWhat is 10 + 20?\n")
    rc, out, err = solve(capsys, "--file", str(path), "--stop", "STOP")
    assert rc == 0, err
    assert out.splitlines() == ["2", "7", "30"]
    assert "spent on 3 problem(s)" in err
    # one solve_batch: the first backend call carries all three problems
    assert len({r.prompt_ids for r in made[-1].calls[0]}) == 3


def test_solve_jsonl_from_stdin_with_json_output_keeps_ids(capsys, monkeypatch):
    lines = [{"id": "a", "problem": "What is 3 + 4?"}, {"problem": "What is 6 + 6?", "answer": "12"}]
    rc, out, err = solve(capsys, "-", "--json", "--stop", "STOP", stdin="\n".join(map(json.dumps, lines)) + "\n",
                         monkeypatch=monkeypatch)
    assert rc == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r.get("id") for r in rows] == ["a", None] and "id" not in rows[1]
    assert [r["answer"] for r in rows] == ["7", "12"]
    assert rows[0]["problem"] == "What is 3 + 4?" and rows[0]["usage"]["candidates"] == 2


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"problem": "ok"}\n{"question": "x"}\n', 'stdin:2: missing the "problem" field (fields: question)'),
        ('{"problem": "ok"}\n{"problem": \n', "stdin:2: malformed JSON"),
        ('{"problem": ""}\n', 'stdin:1: "problem" must be non-empty text'),
        ("\n  \n", "stdin holds no problem"),
    ],
)
def test_solve_bad_input_is_one_line_before_any_model(capsys, monkeypatch, text, needle):
    rc, out, err = solve(capsys, "-", stdin=text, monkeypatch=monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and out == "" and len(lines) == 1 and needle in lines[0], err
    assert made == []  # refused before the backend was built


def test_solve_needs_exactly_one_source(capsys, tmp_path):
    rc, _, err = solve(capsys)
    assert rc == 2 and "no problem given" in err
    path = tmp_path / "p.txt"
    path.write_text("What is 1 + 1?\n")
    rc, _, err = solve(capsys, "What is 1 + 1?", "--file", str(path))
    assert rc == 2 and "both a problem argument and --file" in err
    rc, _, err = solve(capsys, "--file", str(tmp_path / "none.txt"))
    assert rc == 2 and "problem file not found" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--backend", "transformers", "--gpu-layers", "10"], "--gpu-layers is for --backend llamacpp, not transformers"),
        (["--backend", "llamacpp", "--gpu-layers", "-2"], "--gpu-layers must be -1 (all) or 0 or more"),
        (["--backend", "llamacpp", "--tensor-parallel-size", "2"], "--tensor-parallel-size is for --backend vllm"),
        (["--backend", "vllm", "--tensor-parallel-size", "0"], "--tensor-parallel-size must be 1 or more"),
        (["--backend", "llamacpp", "--dtype", "bfloat16"], "--dtype is for --backend vllm or transformers"),
        (["--backend", "vllm", "--dtype", "fp8"], "unknown --dtype 'fp8'"),
        (["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--chat-api", "--chat-template", "{{ x }}"],
         "a chat template cannot apply with --chat-api"),
        (["--backend", "llamacpp", "--chat-template", "no/such/template.jinja"], "is neither a file nor a Jinja template"),
        (["--backend", "vllm", "--chat-template", "{% for m in messages %}"], "Jinja syntax error at line 1"),
        (["--backend", "llamacpp", "--stop", "\\x"], "--stop '\\\\x': bad backslash escape"),
    ],
)
def test_load_flags_only_for_their_backends(capsys, args, needle):
    # a model that does not exist: the flag's error must come first, before anything loads
    rc = main(["solve", "What is 1 + 1?", "--model", "/no/such/model", *args])
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and needle in lines[0], err


def test_parse_problems_plain_lines_and_unescape():
    got = parse_problems("  first  \n\nsecond {x}\n", "f")
    assert [(p.text, p.id) for p in got] == [("first", None), ("second {x}", None)]
    got = parse_problems('{"id": 7, "problem": "p"}\n', "f")
    assert [(p.text, p.id) for p in got] == [("p", "7")]
    assert unescape("a\\n\\tb") == "a\n\tb" and unescape("π\\n") == "π\n" and unescape("plain") == "plain"


# -- chat templates in the backends --------------------------------------------------------------------------


class _FakeLlama:
    """The few llama_cpp.Llama calls LlamaCppTokenizer makes, with one token per byte."""

    metadata = {"tokenizer.chat_template": "GGUF {{ messages[0]['content'] }}"}

    def token_eos(self) -> int:
        return 2

    def token_bos(self) -> int:
        return 1

    def detokenize(self, ids, special=False) -> bytes:
        return bytes(ids)

    def tokenize(self, data: bytes, add_bos=False, special=False) -> list[int]:
        return list(data)


def test_llamacpp_tokenizer_renders_a_users_template():
    from ttscale.backends.chat_template import load_chat_template
    from ttscale.backends.llamacpp import LlamaCppTokenizer

    msgs = [{"role": "user", "content": "hi"}]
    default = LlamaCppTokenizer(_FakeLlama())
    assert bytes(default.chat_prompt(msgs)).decode() == "GGUF hi"
    mine = LlamaCppTokenizer(_FakeLlama(), load_chat_template(
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"))
    assert bytes(mine.chat_prompt(msgs)).decode() == "<user>hi<a>"


MY_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
               "{% if add_generation_prompt %}<a>{% endif %}")


def test_transformers_and_openai_tokenizers_render_a_users_template():
    """The lab model's own tokenizer, through both backends that template with an HF tokenizer."""
    from ttscale.backends.hf import TransformersBackend
    from ttscale.backends.openai_http import load_tokenizer

    msgs = [{"role": "user", "content": "hi"}]
    backend = TransformersBackend("lab:arith", chat_template=MY_TEMPLATE)
    for tok in (backend.tokenizer, load_tokenizer("lab:arith", "x", MY_TEMPLATE)):
        assert tok.decode(tok.chat_prompt(msgs)) == "<user>hi<a>"
    own = load_tokenizer("lab:arith", "x")
    assert backend.hf_tokenizer.convert_tokens_to_ids("<|user|>") in own.chat_prompt(msgs)  # its own template
    with pytest.raises(TTScaleError, match="Jinja syntax error"):
        TransformersBackend("lab:arith", chat_template="{% for %}")


def test_chat_template_from_a_file(tmp_path):
    from ttscale.backends.chat_template import load_chat_template

    path = tmp_path / "t.jinja"
    path.write_text("{{ messages[-1]['content'] }}\n")
    assert load_chat_template(str(path)) == "{{ messages[-1]['content'] }}\n"
    path.write_text("{% if %}")
    with pytest.raises(TTScaleError, match=r"chat template .*t\.jinja: Jinja syntax error"):
        load_chat_template(str(path))


def test_vllm_checks_its_new_options_before_importing_vllm():
    from ttscale.backends.vllm_backend import VLLMBackend

    with pytest.raises(TTScaleError, match="tensor_parallel_size must be a positive integer"):
        VLLMBackend("x", tensor_parallel_size=0)
    with pytest.raises(TTScaleError, match="Jinja syntax error"):
        VLLMBackend("x", chat_template="{% for %}")


def test_llamacpp_takes_gpu_layers_and_chat_template_options():
    import inspect

    from ttscale.backends.llamacpp import LlamaCppBackend

    params = inspect.signature(LlamaCppBackend).parameters
    assert params["gpu_layers"].default == 0 and params["chat_template"].default is None
    with pytest.raises(TTScaleError, match="gpu_layers must be -1"):
        LlamaCppBackend(None, gpu_layers=-5)


# -- bench: flags, recipe fields, datasets --------------------------------------------------------------------


def base_flags(**over):
    flags = {"dataset": "arith", "n": 4, "levels": [1], "budgets": [2], "strategies": ["best_of_n"], "max_tokens": 64}
    flags.update(over)
    return flags


def test_bench_prm_flags_fill_the_prm_verifier_options():
    cfg = resolve_config(None, base_flags(strategies=["particle"], verifier="prm", prm_model="lab:arith-prm",
                                          prm_engine="vllm"))
    assert dict(cfg.verifier_options["prm"]) == {"model": "lab:arith-prm", "engine": "vllm"}
    # over a recipe: the model changes, the recipe's engine stays
    cfg = resolve_config(str(REPO / "recipes" / "particle-filtering-math500.yaml"), {"prm_model": "my/prm"})
    assert dict(cfg.verifier_options["prm"]) == {"model": "my/prm", "engine": "vllm"}
    with pytest.raises(TTScaleError, match="the prm verifier needs a model"):
        resolve_config(None, base_flags(strategies=["particle"], verifier="prm"))
    with pytest.raises(TTScaleError, match="the prm verifier needs a model"):
        resolve_config(None, base_flags(prm_engine="vllm"))


def test_bench_opt_sets_typed_options_on_the_strategies_that_take_them():
    cfg = resolve_config(None, base_flags(strategies=["best_of_n", "beam"], budgets=[4]),
                         {"beam_width": "2", "temperatures": "0.5,1.0"})
    assert dict(cfg.strategy("beam").options) == {"beam_width": 2}
    assert dict(cfg.strategy("best_of_n").options) == {"temperatures": [0.5, 1.0]}
    # the same settings written in a recipe make the same config (same hash, records reusable)
    same = config_from_mapping({"dataset": {"name": "arith", "n": 4, "levels": [1]}, "budgets": [4],
                                "strategies": {"best_of_n": {"temperatures": [0.5, 1.0]}, "beam": {"beam_width": 2}},
                                "sampling": {"max_tokens": 64}})
    assert cfg.config_hash() == same.config_hash()
    # LABEL.key: one line only; flags override the recipe's value
    cfg = resolve_config(None, base_flags(strategies=["best_of_n", "particle"]), {"particle.step_delimiter": "\n"})
    assert cfg.strategy("particle").options == {"step_delimiter": "\n"} and not cfg.strategy("best_of_n").options
    # a label with a hyphen, as `--opt bon-hot.scorer=...` arrives (parse_cli writes - as _)
    from ttscale.strategies.options import parse_cli

    cfg = resolve_config(None, base_flags(strategies={"bon-hot": {"strategy": "best_of_n"}}),
                         parse_cli(["bon-hot.aggregate=weighted"]))
    assert cfg.strategy("bon-hot").options == {"aggregate": "weighted"}


@pytest.mark.parametrize(
    "opts, needle",
    [
        ({"beam_width": "2"}, "--opt beam_width: no strategy of this run takes the option 'beam_width' (best_of_n)"),
        ({"nope.scorer": "x"}, "--opt nope.scorer: the run has no strategy line 'nope'"),
        ({"best_of_n.temperatures": "hot"}, "option temperatures of strategy 'best_of_n' must be"),
    ],
)
def test_bench_opt_errors(opts, needle):
    with pytest.raises(TTScaleError) as e:
        resolve_config(None, base_flags(), opts)
    assert needle in str(e.value)


def test_bench_sampling_and_dataset_flags_override_recipe_fields():
    cfg = resolve_config(str(REPO / "recipes" / "search-and-learn-llama1b.yaml"),
                         {"system_prompt": "Be brief.", "stop": ["\n\n\n"], "offset": 5, "log_samples": True})
    assert cfg.sampling.system_prompt == "Be brief." and cfg.sampling.stop == ("\n\n\n",)
    assert cfg.dataset.offset == 5 and cfg.log_samples is True
    again = config_from_mapping(cfg.to_dict())
    assert again == cfg and again.config_hash() == cfg.config_hash()


def test_offset_and_log_samples_keep_old_hashes_and_settings():
    plain = config_from_mapping({"dataset": "arith", "budgets": [1], "strategies": ["best_of_n"]})
    assert "offset" not in plain.hashed_view()["dataset"] and "log_samples" not in plain.hashed_view()
    shifted = config_from_mapping({"dataset": {"name": "arith", "offset": 3}, "budgets": [1],
                                   "strategies": ["best_of_n"], "log_samples": True})
    assert shifted.config_hash() != plain.config_hash()  # other problems
    assert shifted.settings_hash() == plain.settings_hash()  # records of shared problems stay valid


def test_offset_skips_problems_after_the_level_filter():
    from eval_sets import load

    every = load("arith", n=12, levels=[2])
    assert load("arith", n=12, levels=[2], offset=3, limit=4) == every[3:7]
    with pytest.raises(TTScaleError, match="offset 12 skips all 12 problems"):
        load("arith", n=12, levels=[2], offset=12)


def test_a_users_jsonl_file_is_a_dataset(tmp_path):
    from eval_sets import dataset_checksum, load

    path = tmp_path / "mine.jsonl"
    path.write_text('{"id": "q1", "problem": "What is 2 + 2?", "answer": "4", "level": 1}\n'
                    '{"id": "q2", "problem": "What is 3 + 3?", "answer": 6}\n')
    got = load(str(path))
    assert [(p.id, p.answer, p.level) for p in got] == [("q1", "4", 1), ("q2", "6", None)]
    assert load(str(path), offset=1) == got[1:] and dataset_checksum(str(path))
    path.write_text('{"id": "q1", "problem": "What is 2 + 2?"}\n')
    with pytest.raises(TTScaleError, match=r"mine\.jsonl:1: missing required field\(s\) answer"):
        load(str(path))
    with pytest.raises(TTScaleError, match="dataset file not found"):
        load(str(tmp_path / "other.jsonl"))


def test_bench_on_a_jsonl_file_with_system_prompt_stop_and_offset(tmp_path):
    data = tmp_path / "set.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(1, 5)))
    cfg = resolve_config(None, {"dataset": str(data), "budgets": [2], "offset": 1, "limit": 2, "stop": ["STOP"],
                                "system_prompt": "Solve it.", "max_tokens": 64})
    backend = FakeBackend(script)
    run_bench(cfg, tmp_path / "run", engine=Engine(backend=backend, checker=Checker()), checker=Checker(),
              progress=False)
    recs = [json.loads(x) for x in (tmp_path / "run" / RECORDS_FILE).read_text().splitlines()]
    assert sorted(r["problem_id"] for r in recs) == ["p2", "p3"]  # offset 1, limit 2
    assert all(r["correct"] for r in recs)  # the stop string cut the wrong trailing answer
    assert all("text" not in c for r in recs for c in r["candidates"])  # no --log-samples: no texts
    prompts = {"".join(chr(i) for i in req.prompt_ids) for call in backend.calls for req in call}
    assert all(p.startswith("<system>Solve it.<user>") for p in prompts)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == str(data) and manifest["dataset"]["problems"] == 2


def test_log_samples_keeps_each_candidates_text_in_the_records(tmp_path):
    cfg = resolve_config(None, {**base_flags(budgets=[1, 2]), "log_samples": True, "stop": ["STOP"]})
    run_bench(cfg, tmp_path, engine=Engine(backend=FakeBackend(script), checker=Checker()), checker=Checker(),
              progress=False)
    recs = [json.loads(x) for x in (tmp_path / RECORDS_FILE).read_text().splitlines()]
    assert recs and all(c["text"].startswith("So \\boxed{") for r in recs for c in r["candidates"])
    assert any(r["subsampled_from"] for r in recs)  # subsampled records keep their candidates' texts too


def test_make_records_keeps_texts_only_when_asked():
    from ttscale.bench.grid import WorkItem
    from ttscale.bench.outcomes import Grader, make_records
    from ttscale.ledger import Ledger
    from ttscale.strategies.aggregate import aggregate
    from ttscale.strategies.base import Candidate
    from eval_sets import Problem

    cands = [Candidate(text=f"sample {i} \\boxed{{{i}}}", token_ids=[1, 2], finish_reason="stop", answer=str(i))
             for i in range(3)]
    outcome = aggregate(cands, "majority")
    item = WorkItem("p", "best_of_n", 3, 0, (2, 3))
    problem = Problem(id="p", problem="q", answer="1")
    for log in (False, True):
        recs = make_records(item, problem, "best_of_n", outcome, Ledger(generated_tokens=6), 1.0,
                            Grader(Checker()), log_samples=log)
        texts = [[c.to_dict().get("text") for c in r.candidates] for r in recs]
        want = [[f"sample {i} \\boxed{{{i}}}" for i in range(k)] for k in (2, 3)]
        assert texts == (want if log else [[None] * 2, [None] * 3])
        assert all(("text" in r.to_dict()["candidates"][0]) is log for r in recs)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--opt", "beam_width=2"], "no strategy of this run takes the option 'beam_width'"),
        (["--opt", "beam_width"], "--opt 'beam_width' is not key=value"),
        (["--offset", "-1"], "--offset must be 0 or more"),
        (["--strategies", "particle", "--verifier", "prm"], "the prm verifier needs a model"),
        (["--stop", "\\x"], "bad backslash escape"),
    ],
)
def test_bench_cli_new_flags_bad_input_is_one_line(capsys, tmp_path, args, needle):
    rc = main(["bench", "--dataset", "arith", "--budgets", "1", "--out", str(tmp_path / "o"), *args])
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and needle in lines[0], err


def test_bench_cli_jsonl_file_missing_a_field(capsys, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "1", "answer": "2"}\n')
    rc = main(["bench", "--dataset", str(data), "--budgets", "1", "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert rc == 2 and "bad.jsonl:1: missing required field(s) problem" in err


@pytest.mark.slow
def test_chat_template_changes_the_prompt_of_the_embedded_model(tmp_path):
    """Real llama.cpp model: a one-line template makes a shorter prompt than the GGUF's own template."""
    from helpers import solve_json

    base = solve_json("What is 2 + 3?", "--budget", "1", "--max-tokens", "8")
    mine = solve_json("What is 2 + 3?", "--budget", "1", "--max-tokens", "8", "--chat-template",
                      "Q: {{ messages[-1]['content'] }}\nA:")
    used = lambda r: r["usage"]["prompt_tokens"] + r["usage"]["cached_prompt_tokens"]  # noqa: E731
    assert 0 < used(mine) < used(base)
