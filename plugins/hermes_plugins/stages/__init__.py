"""First-party stages: ``llm_serving`` (vLLM-like engine with a paged KV cache)."""

from hermes_core import hookimpl

from .llm_serving import LLMServing


@hookimpl
def hermes_register_stages(register):
    """Register ``llm_serving``."""
    register("llm_serving", LLMServing)
