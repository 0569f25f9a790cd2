"""Model architectures from Hugging Face ``config.json`` files, as operator lists.

:func:`ModelSpec.from_hf_config` reads the fields that set compute and memory (hidden size,
layers, attention heads and KV heads, head dim, MLP width, vocabulary, MoE experts) and
:meth:`ModelSpec.layer_operators` lists the operators of one decoder layer as one
tensor-parallel shard sees them (Megatron-style sharding: QKV and gate/up column-parallel,
output and down projections row-parallel, one all-reduce after each).

Supported: dense and GQA decoders with a gated MLP (Llama, Mistral, Qwen2/Qwen3, InternLM2
...) and MoE decoders with top-k routing and optional shared experts (Mixtral, Qwen2-MoE,
Qwen3-MoE, MiniMax-M2, gpt-oss), including layers with sliding-window attention (the
``layer_types`` list of ``config.json``, gpt-oss's alternating 128-token window) and
MXFP4-quantized routed experts (``quantization_config.quant_method = "mxfp4"``) or INT4
weight-only ones (compressed-tensors W4A16 in groups of 32, Kimi-K2.5), and query /
key RMSNorm (Qwen3's per-head norm; MiniMax-M2's per-layer norm over all heads, whose
squared sums a tensor-parallel shard all-reduces: ``use_qk_norm`` / ``qk_norm_type``). gpt-oss's
attention sinks (one learned logit per head added to the softmax) and biases are a
negligible share of the work and are not priced.

Multi-head latent attention (MLA: DeepSeek-V2/V3/R1 and their derivatives, ``kv_lora_rank``
in ``config.json``) is modelled as the serving engines run it (DeepSeek-V2 paper, arXiv
2405.04434, section 2.1; vLLM ``MLACommonImpl``, SGLang ``DeepseekV2AttentionMLA``): the
queries go through a low-rank down/up projection (``q_a_proj`` to ``q_lora_rank``, then
``q_b_proj`` to ``heads x (qk_nope + qk_rope)``), the keys and values through a shared
latent of ``kv_lora_rank`` plus one decoupled RoPE key of ``qk_rope_head_dim``
(``kv_a_proj_with_mqa``), which is all the KV cache keeps: ``kv_lora_rank + qk_rope_head_dim``
elements per token and layer, the same on every tensor-parallel device (the latent is not
split by head). ``kv_b_proj`` up-projects the latent to each head's key (``qk_nope``) and
value (``v_head_dim``). Prefill runs as multi-head attention over the up-projected keys and
values; decode absorbs ``kv_b_proj`` into the query and output ("weight absorption") and
attends over the latent directly, a multi-query attention with ``kv_lora_rank +
qk_rope_head_dim``-wide keys and ``kv_lora_rank``-wide values (:class:`AttentionWork`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Operator:
    """One operator of a decoder layer (or of the model head), per device.

    ``kind`` is one of:

    * ``"gemm"``: ``[tokens, k] @ [k, n]``; weights ``k * n`` elements per device.
    * ``"attention"``: self-attention core with ``heads`` query heads and ``kv_heads`` KV
      heads of ``head_dim`` per device.
    * ``"memory"``: memory-bound kernel moving ``elems_per_token`` activation elements per
      token (norms with their fused residual adds, activations, RoPE, embedding
      gather).
    * ``"allreduce"``: tensor-parallel all-reduce of ``elems_per_token`` activation
      elements per token.
    * ``"moe"``: ``experts`` routed experts, each a gated MLP of width ``n`` (per device),
      ``top_k`` of them per token, on hidden size ``k``; with expert parallelism ``ep > 1``
      each device holds ``experts / ep`` of them (and gets ``top_k / ep`` of each token's
      expert slots on average).
    """

    name: str
    kind: str
    n: int = 0
    k: int = 0
    elems_per_token: float = 0.0
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    experts: int = 0
    top_k: int = 0
    ep: int = 1


def _compressed_tensors_experts(quant: dict[str, Any], n_exp: int, where: str) -> str:
    """Expert precision of a compressed-tensors checkpoint (``quant_method:
    compressed-tensors``). Supported: 4-bit symmetric integer weights in groups of 32
    (``pack-quantized`` W4A16, no activation quantization) on the routed experts only, the
    attention and shared / dense MLPs left in 16 bits through the ``ignore`` list
    (Kimi-K2.5): ``"int4_g32"``. Raises :class:`ConfigError` naming the field otherwise."""
    groups = quant.get("config_groups") or {}
    if len(groups) != 1:
        raise ConfigError(f"{where}: quantization_config.config_groups: one group is supported, got {len(groups)}")
    (name, group), = groups.items()
    w = group.get("weights") or {}
    got = (w.get("num_bits"), w.get("type"), w.get("strategy"), w.get("group_size"))
    if got != (4, "int", "group", 32) or group.get("input_activations"):
        raise ConfigError(
            f"{where}: quantization_config.config_groups.{name}: only 4-bit integer weights in groups of 32 "
            f"without activation quantization (W4A16) are modelled; got num_bits, type, strategy, group_size = {got}")
    ignore = " ".join(str(x) for x in quant.get("ignore") or [])
    if not n_exp or "self_attn" not in ignore:
        raise ConfigError(f"{where}: quantization_config.ignore: INT4 weights are modelled on the routed experts "
                          "only (attention and dense layers listed in 'ignore')")
    return "int4_g32"


@dataclass(frozen=True)
class AttentionWork:
    """Per-device work of one attention layer, per phase, as multiples of the batch sums the
    step cost model keeps (query-key pairs, K/V tokens read, query tokens):

    * ``*_flop_per_pair``: FLOP per (query, key) pair, QK^T plus PV over all local heads;
    * ``*_kv_elems``: elements of K/V read per context token (``kv`` dtype for decode and a
      standard KV cache; MLA prefill reads its up-projected keys and values in the
      activation dtype, ``prefill_kv_in_act``);
    * ``*_q_elems``: activation elements per query token moved in and out (queries in,
      outputs out).

    Standard (GQA) attention: ``4 h_q d`` FLOP per pair, ``2 h_kv d`` K/V elements per token
    and ``2 h_q d`` query elements in both phases. MLA: see the module docstring."""

    prefill_flop_per_pair: float
    prefill_kv_elems: float
    prefill_q_elems: float
    decode_flop_per_pair: float
    decode_kv_elems: float
    decode_q_elems: float
    prefill_kv_in_act: bool = False


#: ``model_type`` values whose architecture normalises each head's queries and keys
#: (``q_norm``/``k_norm`` in the Hugging Face modelling code) without a config flag.
QK_NORM_MODEL_TYPES = frozenset({"qwen3", "qwen3_moe"})


@dataclass(frozen=True)
class ModelSpec:
    """Shape of a decoder-only transformer. Counts are whole-model (not per device)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate: int = 0
    shared_expert_intermediate: int = 0
    moe_layers: tuple[int, ...] = ()
    #: tokens a sliding-window attention layer attends to (0: none), and which layers
    sliding_window: int = 0
    sliding_layers: tuple[int, ...] = ()
    #: precision of the routed experts' weights when the checkpoint quantizes only them
    #: (``"mxfp4"`` for gpt-oss, ``"int4_g32"`` for Kimi-K2.5's compressed-tensors W4A16);
    #: ``""``: as the rest of the model
    expert_weights: str = ""
    #: RMSNorm on the queries and keys before RoPE: ``"per_head"`` (Qwen3: over each head's
    #: ``head_dim``), ``"per_layer"`` (MiniMax-M2 ``qk_norm_type``: over all heads, so a
    #: tensor-parallel shard all-reduces the squared sums), ``""``: none
    qk_norm: str = ""
    #: group size of the per-token-group activation quantization a block-scaled FP8
    #: checkpoint needs (``quantization_config``: ``quant_method: fp8`` with
    #: ``weight_block_size: [128, 128]``, as in Qwen3-235B-A22B-FP8 and MiniMax-M2.5): the
    #: engines quantize every input of a converted GEMM in groups of this many elements per
    #: token (vLLM ``per_token_group_quant_fp8``, SGLang ``sglang_per_token_group_quant_fp8``)
    #: before the block-scaled kernel. ``0``: no block-FP8 weights.
    fp8_block: int = 0
    #: multi-head latent attention (0: standard attention): query and KV latent ranks
    #: (``q_lora_rank`` 0: queries projected directly, as in DeepSeek-V2-Lite), each head's
    #: key split into a non-rotary and a rotary part, and its value width
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any], name: str = "", source: str = "") -> ModelSpec:
        """Build from a parsed ``config.json``.

        Raises :class:`ConfigError` naming the file and the field for a missing field, a
        dimension that is not a positive integer (``"hidden_size": "big"``,
        ``"num_attention_heads": 0``), or a multi-head latent attention config without one of
        its dimensions.
        """
        where = source or name or "config.json"
        if "text_config" in cfg and "hidden_size" not in cfg:
            cfg = {**cfg["text_config"], "architectures": cfg.get("architectures")}

        def need(key: str) -> Any:
            if key not in cfg or cfg[key] is None:
                raise ConfigError(f"{where}: missing field '{key}' in config.json")
            return cfg[key]

        def count(key: str, value: Any) -> int:
            # a config.json dimension: a positive integer (JSON numbers like 4096.0 accepted)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
                raise ConfigError(f"{where}: '{key}' in config.json must be a positive integer, got {value!r}")
            return int(value)

        hidden = count("hidden_size", need("hidden_size"))
        heads = count("num_attention_heads", need("num_attention_heads"))
        layers = count("num_hidden_layers", need("num_hidden_layers"))
        count("vocab_size", need("vocab_size"))
        kv_heads = count("num_key_value_heads", cfg["num_key_value_heads"]) if cfg.get("num_key_value_heads") is not None \
            else heads
        head_dim = count("head_dim", cfg["head_dim"]) if cfg.get("head_dim") is not None else hidden // heads
        if "intermediate_size" in cfg and cfg["intermediate_size"] is not None and not isinstance(cfg["intermediate_size"], list):
            if cfg["intermediate_size"] != 0:
                count("intermediate_size", cfg["intermediate_size"])
        n_exp = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
        top_k = int(cfg.get("num_experts_per_tok") or 0) if n_exp else 0
        if n_exp:
            moe_inter = int(cfg.get("moe_intermediate_size") or need("intermediate_size"))
            shared = int(cfg.get("shared_expert_intermediate_size") or 0)
            if not shared and cfg.get("n_shared_experts"):
                shared = int(cfg["n_shared_experts"]) * moe_inter
            step = int(cfg.get("decoder_sparse_step") or 1)
            dense_only = set(cfg.get("mlp_only_layers") or [])
            first_dense = int(cfg.get("first_k_dense_replace") or 0)
            moe_layers = tuple(
                i for i in range(layers)
                if i not in dense_only and i >= first_dense and (i + 1) % step == 0
            )
            if top_k <= 0:
                raise ConfigError(f"{where}: MoE model without 'num_experts_per_tok'")
        else:
            moe_inter, shared, moe_layers = 0, 0, ()
        inter = int(cfg.get("intermediate_size") or (0 if n_exp else need("intermediate_size")))
        max_pos = int(cfg.get("max_position_embeddings") or 4096)
        window, sliding = 0, ()
        types = cfg.get("layer_types")
        if types is not None:
            if not isinstance(types, list) or len(types) != layers:
                raise ConfigError(f"{where}: 'layer_types' must list one type per layer ({layers})")
            sliding = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
        elif cfg.get("use_sliding_window") and cfg.get("sliding_window"):
            sliding = tuple(range(layers))
        if sliding:
            window = int(need("sliding_window"))
            if window <= 0:
                raise ConfigError(f"{where}: 'sliding_window' must be a positive token count, got {window}")
        quant = cfg.get("quantization_config") or {}
        expert_weights = "mxfp4" if n_exp and quant.get("quant_method") == "mxfp4" else ""
        if quant.get("quant_method") == "compressed-tensors":
            expert_weights = _compressed_tensors_experts(quant, n_exp, where)
        fp8_block = 0
        if quant.get("quant_method") == "fp8" and quant.get("weight_block_size"):
            block = quant["weight_block_size"]
            if (not isinstance(block, list) or len(block) != 2
                    or not all(isinstance(b, int) and b > 0 for b in block)):
                raise ConfigError(f"{where}: 'quantization_config.weight_block_size' must be two positive "
                                  f"ints [block_n, block_k], got {block!r}")
            fp8_block = block[1]
        mla = {}
        if cfg.get("kv_lora_rank"):
            mla = {"kv_lora_rank": int(cfg["kv_lora_rank"]), "q_lora_rank": int(cfg.get("q_lora_rank") or 0)}
            for key in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
                mla[key] = int(need(key))
                if mla[key] <= 0:
                    raise ConfigError(f"{where}: '{key}' must be a positive width for multi-head latent attention, "
                                      f"got {mla[key]}")
            # the query/key width per head (what head_dim means for the attention scores)
            head_dim = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        qk_norm = ""
        if cfg.get("use_qk_norm"):
            qk_norm = "per_layer" if cfg.get("qk_norm_type") == "per_layer" else "per_head"
        elif cfg.get("model_type") in QK_NORM_MODEL_TYPES:
            qk_norm = "per_head"
        return cls(
            name=name or cfg.get("_name_or_path", "model"),
            hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
            intermediate=inter, vocab=int(need("vocab_size")), max_position_embeddings=max_pos,
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            num_experts=n_exp, experts_per_token=top_k, moe_intermediate=moe_inter,
            shared_expert_intermediate=shared, moe_layers=moe_layers, sliding_window=window,
            sliding_layers=sliding, expert_weights=expert_weights, qk_norm=qk_norm, fp8_block=fp8_block,
            source=source, raw=cfg, **mla,
        )

    @classmethod
    def from_file(cls, path: str | Path, name: str = "", source: str = "") -> ModelSpec:
        """Read a ``config.json``; raises :class:`ConfigError` naming the file if it is
        missing or not JSON."""
        p = Path(path)
        try:
            cfg = json.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"model config '{p}' does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        default = p.parent.name if p.name == "config.json" else p.stem
        return cls.from_hf_config(cfg, name=name or default, source=source or str(p))

    # -- derived sizes ------------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def params(self) -> dict[str, int]:
        """Parameter counts: ``{"total", "active", "embedding"}`` (active = per token)."""
        h, d = self.hidden, self.head_dim
        attn = h * (self.heads + 2 * self.kv_heads) * d + self.heads * d * h
        if self.is_mla:
            attn = self._mla_replicated_params() + self._mla_split_params()
        dense_mlp = 3 * h * self.intermediate
        n_moe = len(self.moe_layers)
        n_dense = self.layers - n_moe
        expert = 3 * h * self.moe_intermediate
        shared = 3 * h * self.shared_expert_intermediate
        moe_total = self.num_experts * expert + shared + h * self.num_experts
        moe_active = self.experts_per_token * expert + shared + h * self.num_experts
        norms = 2 * h + (self.q_lora_rank + self.kv_lora_rank if self.is_mla else 0)
        emb = self.vocab * h * (1 if self.tie_word_embeddings else 2)
        total = self.layers * (attn + norms) + n_dense * dense_mlp + n_moe * moe_total + emb + h
        active = self.layers * (attn + norms) + n_dense * dense_mlp + n_moe * moe_active + emb + h
        return {"total": total, "active": active, "embedding": emb}

    @property
    def is_mla(self) -> bool:
        """Whether the model uses multi-head latent attention."""
        return self.kv_lora_rank > 0

    def _mla_replicated_params(self) -> int:
        """Per layer: the MLA down-projections every tensor-parallel device holds whole
        (``q_a_proj`` and ``kv_a_proj_with_mqa``; vLLM/SGLang ``ReplicatedLinear``)."""
        h = self.hidden
        q_a = h * self.q_lora_rank if self.q_lora_rank else 0
        return q_a + h * (self.kv_lora_rank + self.qk_rope_head_dim)

    def _mla_split_params(self) -> int:
        """Per layer: the MLA projections split over tensor-parallel devices by head
        (``q_b_proj`` or ``q_proj``, ``kv_b_proj``, ``o_proj``)."""
        h, H = self.hidden, self.heads
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        q = (self.q_lora_rank or h) * H * qk
        return q + self.kv_lora_rank * H * (self.qk_nope_head_dim + self.v_head_dim) + H * self.v_head_dim * h

    def attention_work(self, tp: int = 1) -> AttentionWork:
        """Per-device attention work constants of one layer at tensor-parallel degree
        ``tp`` (:class:`AttentionWork`). MLA (``h`` = heads per device, ``r`` =
        ``kv_lora_rank``, ``p`` = ``qk_rope_head_dim``, ``n`` = ``qk_nope_head_dim``, ``v`` =
        ``v_head_dim``): prefill ``2 h (n + p + v)`` FLOP per pair over up-projected keys
        and values of ``h (n + p + v)`` activation elements per token; decode (absorbed)
        ``2 h (2 r + p)`` FLOP per pair over ``r + p`` cached elements per token, queries
        of ``h (r + p)`` in and outputs of ``h r`` out."""
        hq = self.heads // tp
        if self.is_mla:
            r, p, n, v = self.kv_lora_rank, self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim
            return AttentionWork(
                prefill_flop_per_pair=2.0 * hq * (n + p + v), prefill_kv_elems=hq * (n + p + v),
                prefill_q_elems=hq * (n + p + v), decode_flop_per_pair=2.0 * hq * (2 * r + p),
                decode_kv_elems=r + p, decode_q_elems=hq * (2 * r + p), prefill_kv_in_act=True)
        hkv = max(1, self.kv_heads // tp)
        d = self.head_dim
        return AttentionWork(4.0 * hq * d, 2.0 * hkv * d, 2.0 * hq * d, 4.0 * hq * d, 2.0 * hkv * d, 2.0 * hq * d)

    @property
    def full_attention_layers(self) -> int:
        """Layers that attend to the whole context (all but the sliding-window ones)."""
        return self.layers - len(self.sliding_layers)

    def kv_bytes_per_token(self, kv_dtype_bytes: float, tp: int = 1, pp: int = 1) -> float:
        """KV-cache bytes per token on one device: ``2 * L/pp * kv_heads/tp * head_dim *
        bytes``. With ``tp > kv_heads`` each device keeps one replicated KV head (vLLM).

        ``L`` counts the full-attention layers only when some layers use a sliding window:
        those keep at most ``sliding_window`` tokens per sequence (vLLM's hybrid KV-cache
        manager frees the blocks that leave the window; TensorRT-LLM keeps a pool per window
        size), a fixed few MB per sequence that hermes does not reserve. A model whose every
        layer slides keeps them all in ``L`` (a conservative capacity).

        Multi-head latent attention caches ``L/pp * (kv_lora_rank + qk_rope_head_dim) *
        bytes`` per token on every device, whatever ``tp`` (the latent is shared by all
        heads, so each tensor-parallel device keeps all of it)."""
        layers = self.full_attention_layers or self.layers
        if self.is_mla:
            return (layers / pp) * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        kvh = max(1, self.kv_heads // tp)
        return 2.0 * (layers / pp) * kvh * self.head_dim * kv_dtype_bytes

    def check_parallelism(self, tp: int, pp: int, where: str, ep: int = 1) -> None:
        """Raise :class:`ConfigError` unless heads split evenly over ``tp``, layers over
        ``pp`` and, with expert parallelism ``ep > 1``, the routed experts over ``ep`` and
        their width over the remaining ``tp / ep``."""
        if ep > 1:
            if not self.is_moe:
                raise ConfigError(f"{where}.ep: expert parallelism needs a MoE model; {self.name} has no routed experts")
            if tp % ep:
                raise ConfigError(f"{where}.ep: ep={ep} must divide tp={tp} (the experts are split over "
                                  "ep of the tp devices, their width over the other tp / ep)")
            if self.num_experts % ep:
                raise ConfigError(f"{where}.ep: {self.num_experts} experts do not split over ep={ep}")
        if self.heads % tp:
            raise ConfigError(f"{where}.tp: {self.heads} attention heads do not split over tp={tp}")
        if not self.is_mla and self.kv_heads % tp and tp % self.kv_heads:
            raise ConfigError(f"{where}.tp: {self.kv_heads} KV heads do not split over tp={tp}")
        if pp > self.layers:
            raise ConfigError(f"{where}.pp: pp={pp} exceeds the model's {self.layers} layers")

    def check_block_quantization(self, tp: int, where: str, ep: int = 1) -> None:
        """Raise :class:`ConfigError` when block-scaled FP8 weights (:attr:`fp8_block`) do
        not split over the devices: each tensor-parallel shard of an MLP or routed-expert
        weight must hold whole ``fp8_block``-wide blocks of its intermediate dimension, as
        vLLM and SGLang require of block-FP8 checkpoints (vLLM ``validate_fp8_block_shape``:
        "the output_size of gate's and up's weight ... is not divisible by weight
        quantization block_n"). The routed experts split their width over ``tp / ep``
        devices, so expert parallelism lifts the limit for them (MiniMax-M2.5 at TP8:
        1536 / 8 = 192 is not a multiple of 128; with ``ep = 8`` each device holds whole
        experts). Does nothing for a model without block-FP8 weights."""
        b = self.fp8_block
        if not b:
            return
        dense = self.intermediate and len(self.moe_layers) < self.layers
        if dense and (self.intermediate // tp) % b:
            raise ConfigError(
                f"{where}.tp: {self.name}'s block-FP8 MLP weights ({self.intermediate} wide, blocks of {b}) "
                f"do not split over tp={tp}: {self.intermediate // tp} per device is not a multiple of {b}")
        if self.is_moe:
            width = self.moe_intermediate // (tp // ep)
            if width % b:
                raise ConfigError(
                    f"{where}.tp: {self.name}'s block-FP8 expert weights ({self.moe_intermediate} wide, blocks "
                    f"of {b}) do not split over tp / ep = {tp // ep}: {width} per device is not a multiple "
                    f"of {b}; use expert parallelism (parallelism.ep) or a smaller tp")

    # -- operators ----------------------------------------------------------------------
    def layer_operators(self, tp: int = 1, moe: bool = False, ep: int = 1) -> list[Operator]:
        """Operators of one decoder layer on one of ``tp`` tensor-parallel devices, in
        execution order. ``moe`` picks the MoE variant of the MLP; ``ep`` splits its routed
        experts over ``ep`` of the ``tp`` devices (expert parallelism within the
        tensor-parallel group, vLLM ``--enable-expert-parallel`` without data parallelism,
        TensorRT-LLM ``moe_expert_parallel_size``): each expert is then split over ``tp /
        ep`` devices only, and the layer's output is all-reduced over all ``tp`` as without
        it."""
        h, d = self.hidden, self.head_dim
        hq = self.heads // tp
        hkv = max(1, self.kv_heads // tp)
        # the residual add before each RMSNorm is fused into it (one kernel reading the
        # residual stream and the sublayer's output, writing both the new residual and the
        # normalised activations: vLLM/SGLang ``fused_add_rms_norm``, TensorRT-LLM's
        # ``RMSNorm(hidden, residual)``); layer 0's input norm has no residual yet but is
        # priced the same
        ops = [Operator("input_add_norm", "memory", elems_per_token=4 * h)]
        if self.is_mla:
            ops += self._mla_operators(tp)
        else:
            ops.append(Operator("qkv_proj", "gemm", n=(hq + 2 * hkv) * d, k=h))
        if self.qk_norm:
            # one RMSNorm kernel each on q and k (read and write); a per-layer norm spans
            # all heads, so a TP shard all-reduces the two squared sums per token
            ops += [Operator("q_norm", "memory", elems_per_token=2 * hq * d),
                    Operator("k_norm", "memory", elems_per_token=2 * hkv * d)]
            if self.qk_norm == "per_layer" and tp > 1:
                ops.append(Operator("qk_norm_allreduce", "allreduce", elems_per_token=2))
        if self.is_mla:
            p = self.qk_rope_head_dim
            ops += [
                Operator("rope", "memory", elems_per_token=2 * (hq + 1) * p),
                Operator("attention", "attention", heads=hq, kv_heads=1, head_dim=d),
                Operator("o_proj", "gemm", n=h, k=hq * self.v_head_dim),
            ]
        else:
            ops += [
                Operator("rope", "memory", elems_per_token=2 * (hq + hkv) * d),
                Operator("attention", "attention", heads=hq, kv_heads=hkv, head_dim=d),
                Operator("o_proj", "gemm", n=h, k=hq * d),
            ]
        if tp > 1:
            ops.append(Operator("attn_allreduce", "allreduce", elems_per_token=h))
        ops.append(Operator("post_attention_add_norm", "memory", elems_per_token=4 * h))
        if moe:
            ops.append(Operator("moe_router", "gemm", n=self.num_experts, k=h))
            ops.append(Operator("moe_experts", "moe", n=self.moe_intermediate // (tp // ep), k=h,
                                experts=self.num_experts, top_k=self.experts_per_token, ep=ep))
            if self.shared_expert_intermediate:
                si = self.shared_expert_intermediate // tp
                ops += [
                    Operator("shared_gate_up_proj", "gemm", n=2 * si, k=h),
                    Operator("shared_act", "memory", elems_per_token=3 * si),
                    Operator("shared_down_proj", "gemm", n=h, k=si),
                ]
        else:
            i = self.intermediate // tp
            ops += [
                Operator("gate_up_proj", "gemm", n=2 * i, k=h),
                Operator("act_mul", "memory", elems_per_token=3 * i),
                Operator("down_proj", "gemm", n=h, k=i),
            ]
        if tp > 1:
            ops.append(Operator("mlp_allreduce", "allreduce", elems_per_token=h))
        # the MLP's residual add is fused into the next layer's input norm (or the final one)
        return ops

    def _mla_operators(self, tp: int) -> list[Operator]:
        """The projections of a multi-head latent attention layer before RoPE, per device:
        the fused down-projection ``[q_a_proj; kv_a_proj_with_mqa]`` (replicated, vLLM's
        ``fused_qkv_a_proj``), the latent RMSNorms, ``q_b_proj`` and ``kv_b_proj`` (split by
        head). ``kv_b_proj`` is priced once per token in both phases: prefill up-projects
        the new tokens' keys and values with it, decode applies the same weights to the
        query and the output (weight absorption, the same FLOP and weights per token)."""
        h, hq = self.hidden, self.heads // tp
        r, q = self.kv_lora_rank, self.q_lora_rank
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        ops = [Operator("qkv_a_proj", "gemm", n=q + r + self.qk_rope_head_dim, k=h)]
        if q:
            ops += [Operator("q_a_norm", "memory", elems_per_token=2 * q),
                    Operator("kv_a_norm", "memory", elems_per_token=2 * r),
                    Operator("q_b_proj", "gemm", n=hq * qk, k=q)]
        else:
            ops += [Operator("kv_a_norm", "memory", elems_per_token=2 * r),
                    Operator("q_proj", "gemm", n=hq * qk, k=h)]
        ops.append(Operator("kv_b_proj", "gemm", n=hq * (self.qk_nope_head_dim + self.v_head_dim), k=r))
        return ops

    def head_operators(self, tp: int = 1) -> tuple[list[Operator], list[Operator]]:
        """``(input_ops, output_ops)`` run once per forward pass: the embedding gather on all
        scheduled tokens, and the final norm plus LM head on sampled tokens only."""
        h = self.hidden
        inputs = [Operator("embedding", "memory", elems_per_token=2 * h)]
        outputs = [
            Operator("final_add_norm", "memory", elems_per_token=4 * h),
            Operator("lm_head", "gemm", n=-(-self.vocab // tp), k=h),
        ]
        return inputs, outputs

    def expert_params(self) -> int:
        """Parameters of all routed experts (gate, up and down projections of every expert of
        every MoE layer)."""
        return len(self.moe_layers) * self.num_experts * 3 * self.hidden * self.moe_intermediate

    def weight_bytes_per_device(self, weight_dtype_bytes: float, tp: int, pp: int,
                                expert_dtype_bytes: float | None = None) -> float:
        """Weight bytes on one device (layers split over ``pp``, matrices over ``tp``;
        embedding and LM head vocab-parallel on the first / last stage, counted here on the
        busiest stage; MLA's latent down-projections whole on every device).
        ``expert_dtype_bytes``: bytes per routed-expert weight when the experts are stored
        in another precision (default: ``weight_dtype_bytes``)."""
        p = self.params()
        experts = self.expert_params()
        eb = weight_dtype_bytes if expert_dtype_bytes is None else expert_dtype_bytes
        body = ((p["total"] - p["embedding"] - experts) * weight_dtype_bytes + experts * eb) / pp / tp
        if self.is_mla:  # the latent down-projections are whole on every device
            body += self.layers * self._mla_replicated_params() * weight_dtype_bytes / pp * (1 - 1 / tp)
        emb = self.vocab * self.hidden / tp
        head = 0 if self.tie_word_embeddings else emb
        extra = emb + head if pp == 1 else max(emb, head)
        return body + extra * weight_dtype_bytes
