"""`Qwen2ForProcessRewardModel` for transformers, without the checkpoint's remote code.

Why: Qwen2.5-Math-PRM-7B ships `modeling_qwen2_rm.py` (trust_remote_code), written for transformers 4.x.
Its architecture is small: a Qwen2 decoder and a two-layer head (Linear(h, h), ReLU, Linear(h, 2)) whose
weights are `score.0.*` and `score.2.*` -- the same layout vLLM's native class loads. Defining it here
lets the transformers engine load the real checkpoint with our transformers version and no foreign
code, and lets tests build a tiny model of exactly that architecture. Imported only when needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

ARCHITECTURE = "Qwen2ForProcessRewardModel"


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    """Qwen2 decoder + per-token 2-class head: logits[..., 1] is the step-is-correct class."""

    config_class = Qwen2Config

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__(config)
        self.num_labels = 2
        self.model = Qwen2Model(config)
        self.score = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(),
            nn.Linear(config.hidden_size, 2),
        )
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> TokenClassifierOutput:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return TokenClassifierOutput(logits=self.score(hidden))
