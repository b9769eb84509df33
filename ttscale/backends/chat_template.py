"""A user's chat template (a Jinja file, or the template text itself) in place of the model's own.

Read and parsed before a model loads, so a wrong path or a Jinja syntax error is one line, not a failure
after minutes of loading. Every backend renders prompts itself (llama.cpp from the GGUF, vLLM and
transformers through the HF tokenizer, the openai backend through its client-side tokenizer) and takes
the resolved text; only the openai backend's --chat-api, where the server renders, cannot use one.
"""

from __future__ import annotations

from pathlib import Path

from ttscale.errors import TTScaleError

TEMPLATE_BACKENDS = ("llamacpp", "vllm", "transformers", "openai")  # backends whose constructor takes chat_template


def load_chat_template(value: str) -> str:
    """The template text of `value`: a file's contents when `value` is an existing file, else `value`
    itself when it holds Jinja markup ({{ ... }} or {% ... %})."""
    if not isinstance(value, str) or not value.strip():
        raise TTScaleError("the chat template is empty", "pass a .jinja file or the template text")
    text = None
    if "\n" not in value and len(value) < 4096:
        path = Path(value).expanduser()
        try:
            is_file = path.is_file()
        except OSError:
            is_file = False
        if is_file:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TTScaleError(f"chat template {path} is not UTF-8 text", "save it as UTF-8") from None
    where = "chat template" if text is None else f"chat template {value}"
    if text is None:
        if "{{" not in value and "{%" not in value:
            raise TTScaleError(f"chat template {value!r:.80} is neither a file nor a Jinja template",
                               "pass the path of a .jinja file, or the template text with {{ ... }} / {% ... %}")
        text = value
    check_syntax(text, where)
    return text


def check_syntax(text: str, where: str = "chat template") -> None:
    """Parse (not render) the template: syntax errors now, with the line."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).parse(text)
    except TemplateSyntaxError as e:
        raise TTScaleError(f"{where}: Jinja syntax error at line {e.lineno}: {e.message}",
                           "fix the template (the same Jinja the model's tokenizer_config.json uses)") from None
