"""hermes-contrib-stages: request stages that run before the LLM in a client's pipeline.

It registers, through the ``hermes`` entry-point group (``contrib_stages =
"hermes_contrib_stages"`` in ``pyproject.toml``):

* stage ``rag_retrieval`` (:class:`~hermes_contrib_stages.rag_retrieval.RagRetrieval`):
  an IVF-Flat vector search on CPU workers with a FIFO queue; adds ``top_k * doc_tokens``
  tokens to the request's prompt;
* stage ``kv_retrieval`` (:class:`~hermes_contrib_stages.kv_retrieval.KVRetrieval`):
  fetches a cached prefix's KV cache from a memory tier with a given hit rate.

A multi-stage client (the request passes the stages in order)::

    clients:
      - name: rag
        device: {type: gpu, preset: h100_sxm}
        stages:
          - {type: rag_retrieval, num_vectors: 10000000, dim: 768, nlist: 4096, nprobe: 32,
             top_k: 4, doc_tokens: 256}
          - {type: llm_serving, model: llama-3.1-8b}
"""

from __future__ import annotations

from hermes_core import hookimpl

from .kv_retrieval import KVRetrieval, KVRetrievalConfig
from .rag_retrieval import RagRetrieval, RagRetrievalConfig

__version__ = "0.1.0"

__all__ = [
    "KVRetrieval", "KVRetrievalConfig", "RagRetrieval", "RagRetrievalConfig",
    "hermes_register_stages",
]


@hookimpl
def hermes_register_stages(register):
    """Register the ``kv_retrieval`` and ``rag_retrieval`` stages (config models
    :class:`KVRetrievalConfig`, :class:`RagRetrievalConfig`). Called once when hermes loads
    plugins; returns nothing."""
    register("kv_retrieval", KVRetrieval)
    register("rag_retrieval", RagRetrieval)
