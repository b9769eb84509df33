"""The one protocol every inference backend implements.

A backend gets a whole round of requests at once (from every prompt and strategy the scheduler is
running) and returns, for each, n completions with token ids, text, optional logprobs and usage.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

from ttscale.requests import GenRequest, GenResult

Message = dict[str, str]  # {"role": ..., "content": ...}

TokenHook = Callable[..., None]
"""Progress hook, called as `hook(tokens, samples=0)`: `tokens` newly generated, `samples` completions just
finished. See `Backend.on_tokens`."""


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> token ids, and the model's own chat template (applied once per prompt)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int] | tuple[int, ...], special: bool = False) -> str:
        """Text of `ids`; `special=True` keeps special tokens (to send a templated prompt as text)."""
        ...

    def chat_prompt(self, messages: list[Message]) -> list[int]:
        """Token ids of `messages` rendered with the model's template, ready for the assistant turn."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Generates completions for a batch of token-id requests in one call."""

    name: str
    model: str
    tokenizer: Tokenizer
    context_length: int

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One backend call: results in the order of `requests`."""
        ...

    def close(self) -> None: ...

    # Optional, not part of the checked protocol: `on_tokens: TokenHook | None`, None by default.
    # Why: one backend call can take minutes on a CPU (llama.cpp decodes one sequence at a time), and a
    # display that moves only when the call returns looks hung. A backend that has the attribute calls
    # `self.on_tokens(n)` with newly generated token counts while it decodes (per token or small chunk)
    # and `self.on_tokens(0, 1)` as each completion ends, from the thread that runs `generate`; it must
    # not change what is generated. Drivers install it with `ttscale.progress.watch_backend`, which
    # counts returned results instead for backends without the attribute.


class HFTokenizer:
    """A transformers tokenizer behind the Tokenizer protocol (vLLM, transformers and HTTP backends)."""

    def __init__(self, tok) -> None:  # tok: transformers.PreTrainedTokenizerBase
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int] | tuple[int, ...], special: bool = False) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=not special)

    def chat_prompt(self, messages: list[Message]) -> list[int]:
        if getattr(self.tok, "chat_template", None):
            out = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(out, dict) or hasattr(out, "input_ids"):  # BatchEncoding in newer transformers
                out = out["input_ids"]
            return list(out)
        # Base models without a template: plain concatenation, so they still see the problem.
        return self.encode("\n\n".join(m["content"] for m in messages) + "\n\n")


def find_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    """(index, stop string) of the earliest stop string in `text`, if any: where a completion ends."""
    hits = [(i, s) for s in stops if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None
