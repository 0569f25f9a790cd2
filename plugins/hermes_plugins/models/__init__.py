"""The offline model catalog: Hugging Face ``config.json`` files shipped with hermes.

Each file in ``catalog/`` is an unmodified copy of one model's upstream ``config.json``,
named by the model's lowercase short name (``llama-3.1-70b.json``). A scenario names a model
by that short name (``model: llama-3.1-70b``) and :class:`hermes_core.ModelSpec` reads the
file; no network access is needed. Where each copy came from, and the license of each model,
is in ``catalog/SOURCES.md``.

To add a model: put its ``config.json`` in ``catalog/`` as ``<short-name>.json``, add the
Hugging Face repository id to :data:`HF_REPOS` and a row to ``catalog/SOURCES.md``.
"""

from __future__ import annotations

from pathlib import Path

from hermes_core import hookimpl

#: Folder holding the ``config.json`` copies.
CATALOG_DIR = Path(__file__).resolve().parent / "catalog"

#: Short name (the file stem in ``catalog/``) -> Hugging Face repository id.
HF_REPOS: dict[str, str] = {
    "internlm-20b": "internlm/internlm-20b",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-v0.1",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-14b": "Qwen/Qwen3-14B",
    "qwen3-32b": "Qwen/Qwen3-32B",
    "qwen3-235b-a22b": "Qwen/Qwen3-235B-A22B",
    "qwen3-235b-a22b-fp8": "Qwen/Qwen3-235B-A22B-FP8",
    "minimax-m2.5": "MiniMaxAI/MiniMax-M2.5",
    "gpt-oss-120b": "openai/gpt-oss-120b",
    "deepseek-v3": "deepseek-ai/DeepSeek-V3",
    "deepseek-r1": "deepseek-ai/DeepSeek-R1",
    "kimi-k2.5": "moonshotai/Kimi-K2.5",
}


def catalog_path(name: str) -> Path:
    """Path of the catalog file for short name ``name`` (which need not exist)."""
    return CATALOG_DIR / f"{name}.json"


@hookimpl
def hermes_register_models(register):
    """Register every catalog model: ``register(short_name, path, source=hf_repo_id)``."""
    for name in sorted(HF_REPOS):
        register(name, str(catalog_path(name)), source=HF_REPOS[name])
