"""First-party stages: ``llm_serving`` (vLLM-like engine with a paged KV cache),
``reward_model`` (a reward LM scoring text, priced as a prefill) and the control stages
``route`` (dynamic model routing) and ``reasoning`` (multi-round reasoning with best-of-N)."""

from hermes_core import hookimpl

from .control import Reasoning, Route
from .llm_serving import LLMServing
from .reward import RewardModel


@hookimpl
def hermes_register_stages(register):
    """Register ``llm_serving``, ``reasoning``, ``reward_model`` and ``route``."""
    register("llm_serving", LLMServing)
    register("reasoning", Reasoning)
    register("reward_model", RewardModel)
    register("route", Route)
