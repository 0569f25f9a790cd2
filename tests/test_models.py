"""The offline model catalog (``hermes_plugins.models``) and what ModelSpec derives from it.

Expected parameter counts are worked out by hand in the comments from each architecture:
per layer, attention ``h*(heads + 2*kv_heads)*head_dim + heads*head_dim*h`` (Q, K, V, O
projections, no biases), gated MLP ``3*h*I`` (gate, up, down), two RMSNorm weight vectors
``2*h``; per model, input embedding plus untied LM head ``2*V*h`` and the final norm ``h``.
MoE layers replace the MLP with ``E`` experts of ``3*h*I_expert`` plus a router ``h*E``;
"active" counts only the ``top_k`` routed experts. Qwen3 also has per-head q_norm / k_norm
weights (``2*head_dim`` per layer, e.g. 9,216 in all for Qwen3-8B); ModelSpec leaves them out,
which is far below the tolerances used here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hermes_plugins.models as catalog
from hermes_core import ConfigError, load_plugins
from hermes_core.modelspec import ModelSpec
from hermes_core.plugins import model_path

CATALOG = catalog.CATALOG_DIR


def spec(name: str) -> ModelSpec:
    return ModelSpec.from_file(CATALOG / f"{name}.json", name=name)


def assert_close(got: float, want: float, rel: float = 0.005) -> None:
    assert abs(got - want) <= rel * want, f"got {got:,.0f}, want {want:,.0f} (±{rel:.1%})"


# -- discovery and registration ---------------------------------------------------------
def test_models_plugin_is_discovered_through_its_entry_point(monkeypatch):
    monkeypatch.setenv("HERMES_LOAD_PLUGINS", "models")
    monkeypatch.delenv("HERMES_DISABLE_PLUGINS", raising=False)
    registry = load_plugins()
    assert registry.names("models") == sorted(catalog.HF_REPOS)
    comp = registry.get("models", "llama-3.1-70b")
    assert comp.plugin.name == "models"
    assert comp.source == "meta-llama/Llama-3.1-70B"


def test_every_catalog_file_is_registered_and_every_registration_has_a_file():
    on_disk = {p.stem for p in CATALOG.glob("*.json")}
    assert on_disk == set(catalog.HF_REPOS)


def test_registered_paths_are_absolute_strings_to_existing_files():
    registry = load_plugins([("models", catalog)], entry_points=False)
    for name in registry.names("models"):
        comp = registry.get("models", name)
        assert isinstance(comp.obj, str)
        path = Path(comp.obj)
        assert path.is_absolute() and path.is_file()
        assert path.stem == name
        assert comp.source == catalog.HF_REPOS[name]


def test_model_names_resolve_case_insensitively():
    registry = load_plugins([("models", catalog)], entry_points=False)
    assert model_path(registry, "Llama-3.1-70B", "clients[0].model") == CATALOG / "llama-3.1-70b.json"


def test_sources_table_lists_every_catalog_file():
    text = (CATALOG / "SOURCES.md").read_text()
    for name, repo in catalog.HF_REPOS.items():
        assert f"| {name}.json | {repo} |" in text


@pytest.mark.parametrize("name", sorted(catalog.HF_REPOS))
def test_every_catalog_file_loads(name):
    s = spec(name)
    assert s.hidden > 0 and s.layers > 0 and s.vocab > 0
    assert s.heads % s.kv_heads == 0


def test_from_file_names_a_catalog_model_after_its_file():
    assert ModelSpec.from_file(CATALOG / "qwen3-8b.json").name == "qwen3-8b"


# -- parameter counts -------------------------------------------------------------------
def test_llama_3_1_70b_params():
    # h=8192, L=80, 64 heads, 8 KV heads, head_dim 128, I=28672, V=128256, untied.
    # attention: q 8192*8192 = 67,108,864; k+v 2*8192*1024 = 16,777,216;
    #            o 67,108,864                         -> 150,994,944
    # MLP 3*8192*28672 = 704,643,072; norms 2*8192 = 16,384
    # per layer 855,654,400; x80 = 68,452,352,000
    # embeddings + LM head 2*128256*8192 = 2,101,346,304; final norm 8,192
    # total 70,553,706,496
    p = spec("llama-3.1-70b").params()
    assert_close(p["total"], 70.55e9)
    assert p["total"] == 70_553_706_496
    assert p["active"] == p["total"]
    assert p["embedding"] == 2_101_346_304


def test_llama_3_1_8b_params():
    # h=4096, L=32, 32 heads, 8 KV heads, I=14336, V=128256.
    # attention 16,777,216 + 8,388,608 + 16,777,216 = 41,943,040
    # MLP 3*4096*14336 = 176,160,768; norms 8,192 -> per layer 218,112,000; x32 = 6,979,584,000
    # embeddings 2*128256*4096 = 1,050,673,152; final norm 4,096 -> 8,030,261,248
    p = spec("llama-3.1-8b").params()
    assert_close(p["total"], 8.03e9)
    assert p["total"] == 8_030_261_248


def test_llama_3_1_405b_params():
    # h=16384, L=126, 128 heads, 8 KV heads, I=53248, V=128256.
    # attention 268,435,456 + 33,554,432 + 268,435,456 = 570,425,344
    # MLP 3*16384*53248 = 2,617,245,696; norms 32,768 -> per layer 3,187,703,808
    # x126 = 401,650,679,808; embeddings 2*128256*16384 = 4,202,692,608; final norm 16,384
    # total 405,853,388,800
    p = spec("llama-3.1-405b").params()
    assert_close(p["total"], 405.8e9)
    assert p["total"] == 405_853_388_800


def test_llama_2_7b_params():
    # h=4096, L=32, 32 heads, 32 KV heads (no GQA), I=11008, V=32000.
    # attention 4*4096^2 = 67,108,864; MLP 3*4096*11008 = 135,266,304; norms 8,192
    # per layer 202,383,360; x32 = 6,476,267,520; embeddings 2*32000*4096 = 262,144,000;
    # final norm 4,096 -> 6,738,415,616
    p = spec("llama-2-7b").params()
    assert_close(p["total"], 6.74e9)
    assert p["total"] == 6_738_415_616


def test_llama_2_70b_params():
    # As Llama-3.1-70B but V=32000: 68,452,352,000 + 2*32000*8192 (524,288,000) + 8,192
    # = 68,976,648,192
    p = spec("llama-2-70b").params()
    assert_close(p["total"], 68.98e9)


def test_mixtral_8x7b_params():
    # h=4096, L=32, 32 heads, 8 KV heads, 8 experts of I=14336, top-2, V=32000.
    # attention 41,943,040; norms 8,192; expert 3*4096*14336 = 176,160,768; router 4096*8 = 32,768
    # total per layer 41,943,040 + 8,192 + 8*176,160,768 + 32,768 = 1,451,270,144; x32 =
    # 46,440,644,608; + embeddings 262,144,000 + final norm 4,096 = 46,702,792,704
    # active per layer 41,943,040 + 8,192 + 2*176,160,768 + 32,768 = 394,305,536; x32 =
    # 12,617,777,152; + 262,148,096 = 12,879,925,248
    p = spec("mixtral-8x7b").params()
    assert_close(p["total"], 46.7e9)
    assert_close(p["active"], 12.9e9)
    assert p["total"] == 46_702_792_704
    assert p["active"] == 12_879_925_248


def test_qwen3_235b_a22b_params():
    # h=4096, L=94, 64 heads, 4 KV heads, head_dim 128, 128 experts of I=1536, top-8,
    # V=151936, untied.
    # attention q 4096*64*128 = 33,554,432; k+v 2*4096*4*128 = 4,194,304; o 33,554,432
    #           -> 71,303,168; norms 8,192; expert 3*4096*1536 = 18,874,368; router 524,288
    # total per layer 71,303,168 + 8,192 + 128*18,874,368 + 524,288 = 2,487,754,752; x94 =
    # 233,848,946,688; + embeddings 2*151936*4096 = 1,244,659,712 + final norm 4,096
    # = 235,093,610,496 (q/k norms would add 94*256 = 24,064)
    # active per layer 71,303,168 + 8,192 + 8*18,874,368 + 524,288 = 222,830,592; x94 =
    # 20,946,075,648; + 1,244,663,808 = 22,190,739,456
    p = spec("qwen3-235b-a22b").params()
    assert_close(p["total"], 235e9)
    assert_close(p["active"], 22.2e9)
    assert p["total"] == 235_093_610_496
    assert p["active"] == 22_190_739_456


def test_minimax_m2_5_params():
    # h=3072, L=62, 48 heads, 8 KV heads, head_dim 128, 256 experts of I=1536, top-8,
    # V=200064, untied (model card: 230B total, 10B activated without embeddings).
    # attention q 3072*48*128 = 18,874,368; k+v 2*3072*8*128 = 6,291,456; o 18,874,368
    #           -> 44,040,192; norms 6,144; expert 3*3072*1536 = 14,155,776; router 786,432
    # total per layer 44,040,192 + 6,144 + 256*14,155,776 + 786,432 = 3,668,711,424; x62 =
    # 227,460,108,288; + embeddings 2*200064*3072 = 1,229,193,216 + final norm 3,072
    # = 228,689,304,576
    # active per layer 44,040,192 + 6,144 + 8*14,155,776 + 786,432 = 158,078,976; x62 =
    # 9,800,896,512; + 1,229,196,288 = 11,030,092,800
    p = spec("minimax-m2.5").params()
    assert_close(p["total"], 230e9, rel=0.01)
    assert_close(p["active"] - p["embedding"], 10e9, rel=0.02)
    assert p["total"] == 228_689_304_576
    assert p["active"] == 11_030_092_800


def test_gpt_oss_120b_params_and_layout():
    # h=2880, L=36, 64 heads, 8 KV heads, head_dim 64, 128 experts of I=2880, top-4,
    # V=201088, untied (OpenAI model card: 116.83B total, 5.13B active per token, which
    # leaves out the input embedding). Biases and sinks are not counted (0.03 %).
    # attention q 2880*64*64 = 11,796,480; k+v 2*2880*8*64 = 2,949,120; o 11,796,480
    #           -> 26,542,080; norms 5,760; expert 3*2880*2880 = 24,883,200; router 368,640
    # total per layer 26,542,080 + 5,760 + 128*24,883,200 + 368,640 = 3,211,966,080; x36 =
    # 115,630,778,880; + embeddings 2*201088*2880 = 1,158,266,880 + final norm 2,880
    # = 116,789,048,640
    # active per layer 26,542,080 + 5,760 + 4*24,883,200 + 368,640 = 126,449,280; x36 =
    # 4,552,174,080; + 1,158,269,760 = 5,710,443,840
    s = spec("gpt-oss-120b")
    p = s.params()
    assert p["total"] == 116_789_048_640
    assert p["active"] == 5_710_443_840
    assert_close(p["active"] - p["embedding"] / 2, 5.13e9, rel=0.01)
    # alternating 128-token sliding-window layers, starting with layer 0
    assert s.sliding_window == 128 and s.sliding_layers == tuple(range(0, 36, 2))
    assert s.full_attention_layers == 18
    # MXFP4 experts (4.25 bits), BF16 rest: 115.63e9 - 36*(26,542,080 + 5,760 + 368,640)
    # = 114.663e9 expert weights at 0.53125 B + 1,158,266,880 + 968,474,880 at 2 B
    experts = 36 * 128 * 24_883_200
    assert s.expert_params() == experts
    rest = p["total"] - experts
    assert s.weight_bytes_per_device(2.0, 1, 1, 4.25 / 8) == pytest.approx(experts * 4.25 / 8 + rest * 2.0)
    # KV per token holds the 18 full-attention layers only: 2 * 18 * 8 * 64 * 2 B
    assert s.kv_bytes_per_token(2.0) == 36_864


def test_qwen3_8b_params():
    # h=4096, L=36, 32 heads, 8 KV heads, head_dim 128, I=12288, V=151936, untied.
    # attention 16,777,216 + 8,388,608 + 16,777,216 = 41,943,040; MLP 3*4096*12288 =
    # 150,994,944; norms 8,192 -> per layer 192,946,176; x36 = 6,946,062,336
    # (the model card's 6.95B non-embedding); + embeddings 1,244,659,712 + 4,096
    # = 8,190,726,144 (model card: 8.2B)
    p = spec("qwen3-8b").params()
    assert_close(p["total"], 8.19e9)
    assert p["total"] - p["embedding"] == 6_946_066_432


def test_qwen3_14b_and_32b_params():
    # 14B: h=5120, L=40, 40 heads, 8 KV, I=17408: attention 5120*(40+16)*128 + 40*128*5120
    #   = 36,700,160 + 26,214,400 = 62,914,560; MLP 267,386,880; norms 10,240
    #   -> 330,311,680 x40 = 13,212,467,200; + 2*151936*5120 = 1,555,824,640 + 5,120
    #   = 14,768,296,960 (model card: 14.8B)
    # 32B: h=5120, L=64, 64 heads, 8 KV, I=25600: attention 5120*80*128 + 64*128*5120
    #   = 52,428,800 + 41,943,040 = 94,371,840; MLP 393,216,000; norms 10,240
    #   -> 487,598,080 x64 = 31,206,277,120; + 1,555,829,760 = 32,762,106,880 (card: 32.8B)
    assert_close(spec("qwen3-14b").params()["total"], 14.77e9)
    assert_close(spec("qwen3-32b").params()["total"], 32.76e9)


def test_internlm_20b_params():
    # h=5120, L=60, 40 heads, 40 KV heads, I=13824, V=103168, no biases ("bias": false).
    # attention 4*5120^2 = 104,857,600; MLP 3*5120*13824 = 212,336,640; norms 10,240
    # per layer 317,204,480; x60 = 19,032,268,800; + 2*103168*5120 = 1,056,440,320 + 5,120
    # = 20,088,714,240
    p = spec("internlm-20b").params()
    assert_close(p["total"], 20.09e9)


# -- KV cache ---------------------------------------------------------------------------
def test_llama_3_1_70b_kv_bytes_per_token():
    s = spec("llama-3.1-70b")
    # K and V * 80 layers * 8 KV heads * 128 * 2 bytes (bf16)
    assert s.kv_bytes_per_token(2, tp=1) == 2 * 80 * 8 * 128 * 2 == 327_680
    # tp=8: one KV head per device
    assert s.kv_bytes_per_token(2, tp=8) == 40_960
    # pp=2 halves the layers on a device
    assert s.kv_bytes_per_token(2, tp=8, pp=2) == 20_480


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    s = spec("qwen3-235b-a22b")  # 4 KV heads
    assert s.kv_bytes_per_token(2, tp=8) == s.kv_bytes_per_token(2, tp=4) == 2 * 94 * 1 * 128 * 2


# -- operators --------------------------------------------------------------------------
def test_llama_3_1_70b_layer_operators_at_tp8():
    ops = {op.name: op for op in spec("llama-3.1-70b").layer_operators(tp=8)}
    # 64/8 = 8 query heads and 8/8 = 1 KV head per device: (8 + 2*1) * 128 = 1280
    assert (ops["qkv_proj"].n, ops["qkv_proj"].k) == (1280, 8192)
    assert (ops["o_proj"].n, ops["o_proj"].k) == (8192, 1024)
    assert ops["gate_up_proj"].n == 2 * 28672 // 8 == 7168
    assert (ops["down_proj"].n, ops["down_proj"].k) == (8192, 3584)
    assert (ops["attention"].heads, ops["attention"].kv_heads, ops["attention"].head_dim) == (8, 1, 128)
    assert {"attn_allreduce", "mlp_allreduce"} <= ops.keys()


def test_no_allreduce_at_tp1():
    names = [op.name for op in spec("llama-3.1-8b").layer_operators(tp=1)]
    assert not any("allreduce" in n for n in names)


def test_operator_weights_add_up_to_the_layer_params():
    # The GEMM weights of one layer, summed over 8 devices, equal attention + MLP weights.
    s = spec("llama-3.1-70b")
    per_device = sum(op.n * op.k for op in s.layer_operators(tp=8) if op.kind == "gemm")
    assert per_device * 8 == 150_994_944 + 704_643_072


# -- MoE layout -------------------------------------------------------------------------
@pytest.mark.parametrize("name, layers, experts, top_k, width", [
    ("qwen3-235b-a22b", 94, 128, 8, 1536),
    ("minimax-m2.5", 62, 256, 8, 1536),
    ("mixtral-8x7b", 32, 8, 2, 14336),
    ("gpt-oss-120b", 36, 128, 4, 2880),
])
def test_moe_models_have_moe_in_every_layer(name, layers, experts, top_k, width):
    s = spec(name)
    assert s.is_moe
    assert s.moe_layers == tuple(range(layers))
    assert (s.num_experts, s.experts_per_token, s.moe_intermediate) == (experts, top_k, width)
    moe = {op.name: op for op in s.layer_operators(tp=1, moe=True)}["moe_experts"]
    assert (moe.experts, moe.top_k, moe.n, moe.k) == (experts, top_k, width, s.hidden)


def test_dense_models_have_no_moe_layers():
    for name in ("llama-3.1-70b", "qwen3-32b", "internlm-20b"):
        assert not spec(name).is_moe and spec(name).moe_layers == ()


# -- errors -----------------------------------------------------------------------------
def _write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def test_sliding_window_layers_from_config(tmp_path):
    cfg = json.loads((CATALOG / "llama-3.1-8b.json").read_text())
    # no layer_types and no use_sliding_window: every layer attends to the whole context
    assert ModelSpec.from_hf_config({**cfg, "sliding_window": 4096}).sliding_layers == ()
    # Qwen2-style switch: every layer slides
    allw = ModelSpec.from_hf_config({**cfg, "sliding_window": 4096, "use_sliding_window": True})
    assert allw.sliding_layers == tuple(range(32)) and allw.sliding_window == 4096
    # a model whose every layer slides keeps them all in the per-token KV (conservative)
    assert allw.kv_bytes_per_token(2.0) == ModelSpec.from_hf_config(cfg).kv_bytes_per_token(2.0)
    types = ["full_attention"] * 32
    types[5] = "sliding_attention"
    one = ModelSpec.from_hf_config({**cfg, "sliding_window": 512, "layer_types": types})
    assert one.sliding_layers == (5,) and one.full_attention_layers == 31
    with pytest.raises(ConfigError, match="'layer_types' must list one type per layer"):
        ModelSpec.from_file(_write(tmp_path, {**cfg, "layer_types": types[:3], "sliding_window": 512}))
    with pytest.raises(ConfigError, match="missing field 'sliding_window'"):
        ModelSpec.from_hf_config({**cfg, "layer_types": types})
    with pytest.raises(ConfigError, match="positive token count"):
        ModelSpec.from_hf_config({**cfg, "layer_types": types, "sliding_window": -1})


def test_qk_norm_operators():
    """Qwen3 normalises each head's q and k (two RMSNorm kernels, no communication);
    MiniMax-M2's per-layer norm spans all heads, so a TP shard also all-reduces the two
    squared sums per token (vLLM ``MiniMaxText01RMSNormTP.forward_qk``); Llama has neither."""
    qwen = {op.name: op for op in spec("qwen3-235b-a22b").layer_operators(tp=4, moe=True)}
    # 64 query heads and 4 KV heads of 128 over 4 devices: 16 and 1 per device, read + write
    assert (qwen["q_norm"].elems_per_token, qwen["k_norm"].elems_per_token) == (2 * 16 * 128, 2 * 1 * 128)
    assert "qk_norm_allreduce" not in qwen
    mm = spec("minimax-m2.5")
    assert mm.qk_norm == "per_layer"
    names = [op.name for op in mm.layer_operators(tp=8, moe=True)]
    assert names[:6] == ["input_add_norm", "qkv_proj", "q_norm", "k_norm", "qk_norm_allreduce", "rope"]
    assert {op.name: op for op in mm.layer_operators(tp=8, moe=True)}["qk_norm_allreduce"].elems_per_token == 2
    assert "qk_norm_allreduce" not in [op.name for op in mm.layer_operators(tp=1, moe=True)]
    assert spec("llama-3.1-70b").qk_norm == "" and "q_norm" not in [op.name for op in spec("llama-3.1-70b").layer_operators(8)]
    cfg = json.loads((CATALOG / "llama-3.1-8b.json").read_text())
    assert ModelSpec.from_hf_config({**cfg, "use_qk_norm": True}).qk_norm == "per_head"


# -- multi-head latent attention (DeepSeek-V3 / R1) --------------------------------------
def test_deepseek_v3_params_match_the_published_671b_and_37b_active():
    """Per layer (h = 7168, 128 heads, q_lora 1536, kv_lora 512, rope 64, nope 128, v 128):
    q_a 7168*1536 = 11,010,048; q_b 1536*128*192 = 37,748,736; kv_a 7168*576 = 4,128,768;
    kv_b 512*128*256 = 16,777,216; o 128*128*7168 = 117,440,512; norms 2*7168 + 1536 + 512.
    Layers 0-2 dense (3*7168*18432); 58 MoE layers of 256 experts of 3*7168*2048 plus one
    shared expert of the same width and a 7168x256 router; embedding + LM head 2*129280*7168.
    The model card: 671B total, 37B activated (the MTP module's 14B are not in the model)."""
    s = spec("deepseek-v3")
    assert s.is_mla and (s.q_lora_rank, s.kv_lora_rank, s.qk_rope_head_dim, s.v_head_dim) == (1536, 512, 64, 128)
    attn = 11_010_048 + 37_748_736 + 4_128_768 + 16_777_216 + 117_440_512
    norms = 2 * 7168 + 1536 + 512
    expert = 3 * 7168 * 2048
    moe = 256 * expert + expert + 7168 * 256
    emb = 2 * 129_280 * 7168
    total = 61 * (attn + norms) + 3 * 3 * 7168 * 18432 + 58 * moe + emb + 7168
    p = s.params()
    assert p["total"] == total
    assert p["active"] == total - 58 * 248 * expert
    assert_close(p["total"], 671e9, rel=0.01)
    assert_close(p["active"], 37e9, rel=0.02)
    assert spec("deepseek-r1").params() == p


def test_mla_caches_the_latent_once_per_device_whatever_tp():
    s = spec("deepseek-v3")
    # 61 layers * (512 latent + 64 RoPE key) * 2 bytes, not split by tensor parallelism
    assert s.kv_bytes_per_token(2, tp=1) == s.kv_bytes_per_token(2, tp=8) == 61 * 576 * 2 == 70_272
    assert s.kv_bytes_per_token(1, tp=8, pp=2) == 30.5 * 576


def test_mla_layer_operators_at_tp8():
    ops = {op.name: op for op in spec("deepseek-v3").layer_operators(tp=8, moe=True)}
    # fused down-projection, whole on every device: 1536 + 512 + 64 = 2112 outputs
    assert (ops["qkv_a_proj"].n, ops["qkv_a_proj"].k) == (2112, 7168)
    # 16 heads per device: q_b 16*192, kv_b 16*(128+128) from the 512 latent, o from 16*128
    assert (ops["q_b_proj"].n, ops["q_b_proj"].k) == (3072, 1536)
    assert (ops["kv_b_proj"].n, ops["kv_b_proj"].k) == (4096, 512)
    assert (ops["o_proj"].n, ops["o_proj"].k) == (7168, 2048)
    assert (ops["q_a_norm"].elems_per_token, ops["kv_a_norm"].elems_per_token) == (2 * 1536, 2 * 512)
    assert ops["attention"].heads == 16
    # moe_intermediate 2048 over 8 devices; the shared expert too
    assert (ops["moe_experts"].n, ops["moe_experts"].experts, ops["moe_experts"].top_k) == (256, 256, 8)
    assert ops["shared_gate_up_proj"].n == 512 and ops["shared_down_proj"].k == 256
    # the split projections over 8 devices plus the replicated one add up to the layer
    split = sum(op.n * op.k for name, op in ops.items() if name in ("q_b_proj", "kv_b_proj", "o_proj"))
    assert split * 8 == 37_748_736 + 16_777_216 + 117_440_512
    dense = [op.name for op in spec("deepseek-v3").layer_operators(tp=8, moe=False)]
    assert dense[-4:] == ["gate_up_proj", "act_mul", "down_proj", "mlp_allreduce"]


def test_mla_attention_work_per_phase():
    w = spec("deepseek-v3").attention_work(tp=8)
    # prefill: multi-head attention over up-projected K (192) and V (128) of 16 heads
    assert (w.prefill_flop_per_pair, w.prefill_kv_elems, w.prefill_q_elems) == (2 * 16 * 320, 16 * 320, 16 * 320)
    assert w.prefill_kv_in_act
    # decode (absorbed): scores over 576-wide latent keys, values 512 wide, 16 heads
    assert (w.decode_flop_per_pair, w.decode_kv_elems, w.decode_q_elems) == (2 * 16 * 1088, 576, 16 * 1088)
    g = spec("llama-3.1-70b").attention_work(tp=8)  # 8 query heads, 1 KV head of 128
    assert (g.prefill_flop_per_pair, g.decode_kv_elems, g.decode_q_elems) == (4 * 8 * 128, 2 * 128, 2 * 8 * 128)


def test_mla_weights_per_device_keep_the_down_projections_whole():
    s = spec("deepseek-v3")
    base = (s.params()["total"] - s.params()["embedding"]) / 8 + 2 * 129_280 * 7168 / 8
    replicated = 61 * (11_010_048 + 4_128_768) * 7 / 8
    assert s.weight_bytes_per_device(1, tp=8, pp=1) == pytest.approx(base + replicated)


def test_mla_config_without_a_width_names_the_field(tmp_path):
    cfg = json.loads((CATALOG / "deepseek-v3.json").read_text())
    del cfg["v_head_dim"]
    with pytest.raises(ConfigError, match="v_head_dim"):
        ModelSpec.from_file(_write(tmp_path, cfg))


def test_missing_hidden_size_names_the_field_and_the_file(tmp_path):
    cfg = json.loads((CATALOG / "llama-3.1-8b.json").read_text())
    del cfg["hidden_size"]
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError, match="'hidden_size'") as info:
        ModelSpec.from_file(path)
    assert str(path) in str(info.value)


def test_block_fp8_weights_must_split_into_whole_blocks():
    """vLLM refuses a block-FP8 checkpoint whose shard of a weight holds a partial 128-wide
    block: MiniMax-M2.5's experts (1536 wide) split over TP4 (384) but not TP8 (192) unless
    expert parallelism keeps each expert whole; Qwen3-235B-A22B-FP8 likewise."""
    mm, qw = spec("minimax-m2.5"), spec("qwen3-235b-a22b-fp8")
    for tp, ep in ((1, 1), (2, 1), (4, 1), (8, 8), (8, 2)):  # 1536 / (tp / ep) = 1536, 768, 384, 1536, 384
        mm.check_block_quantization(tp, "stage.parallelism", ep)
    with pytest.raises(ConfigError, match=r"stage\.parallelism\.tp: minimax-m2\.5's block-FP8 expert weights "
                                          r"\(1536 wide, blocks of 128\) do not split over tp / ep = 8: 192 per "
                                          r"device .*use expert parallelism"):
        mm.check_block_quantization(8, "stage.parallelism")
    with pytest.raises(ConfigError, match="tp / ep = 8: 192"):
        qw.check_block_quantization(8, "x")
    spec("qwen3-235b-a22b").check_block_quantization(8, "x")  # BF16 checkpoint: no blocks
    dense = ModelSpec.from_hf_config({**json.loads((CATALOG / "llama-3.1-8b.json").read_text()),
                                      "quantization_config": {"quant_method": "fp8",
                                                              "weight_block_size": [128, 128]}}, name="d")
    dense.check_block_quantization(8, "x")  # 14336 / 8 = 1792 = 14 blocks
    with pytest.raises(ConfigError, match=r"MLP weights \(14336 wide, blocks of 128\) do not split over tp=32: 448"):
        dense.check_block_quantization(32, "x")  # 448 = 3.5 blocks


def test_block_fp8_checkpoints_declare_their_quantization_group():
    assert spec("qwen3-235b-a22b-fp8").fp8_block == 128
    assert spec("minimax-m2.5").fp8_block == 128
    assert spec("qwen3-235b-a22b").fp8_block == 0 and spec("gpt-oss-120b").fp8_block == 0
    # the FP8 checkpoint has the BF16 one's architecture
    assert spec("qwen3-235b-a22b-fp8").params() == spec("qwen3-235b-a22b").params()
    bad = {**json.loads((CATALOG / "llama-3.1-8b.json").read_text()),
           "quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}}
    with pytest.raises(ConfigError, match=r"quantization_config\.weight_block_size.*\[128\]"):
        ModelSpec.from_hf_config(bad, name="bad")


def test_kimi_k2_5_params_and_int4_experts():
    """Kimi-K2.5's text model (its config.json's ``text_config``): DeepSeek-V3's layout with
    64 heads, 384 experts and one dense layer. Per layer: q_a 7168*1536, q_b 1536*64*192,
    kv_a 7168*576, kv_b 512*64*256, o 64*128*7168; 60 MoE layers of 384 + 1 shared experts of
    3*7168*2048 and a 7168x384 router; embedding + LM head 2*163840*7168. The card: 1T total,
    32B activated (plus a 400M vision encoder hermes does not price)."""
    s = spec("kimi-k2.5")
    assert s.is_mla and s.heads == 64 and s.num_experts == 384 and len(s.moe_layers) == 60
    attn = 7168 * 1536 + 1536 * 64 * 192 + 7168 * 576 + 512 * 64 * 256 + 64 * 128 * 7168
    norms = 2 * 7168 + 1536 + 512
    expert = 3 * 7168 * 2048
    total = 61 * (attn + norms) + 3 * 7168 * 18432 + 60 * (385 * expert + 7168 * 384) + 2 * 163_840 * 7168 + 7168
    p = s.params()
    assert p["total"] == total and p["active"] == total - 60 * 376 * expert
    assert_close(p["total"], 1.03e12, rel=0.01)
    assert_close(p["active"], 32.9e9, rel=0.01)
    # INT4 in groups of 32 on the routed experts only (compressed-tensors W4A16)
    assert s.expert_weights == "int4_g32"


@pytest.mark.parametrize("change, msg", [
    ({"num_bits": 8}, "only 4-bit integer weights in groups of 32"),
    ({"group_size": 128}, "only 4-bit integer weights in groups of 32"),
])
def test_other_compressed_tensors_schemes_are_refused_with_the_field(tmp_path, change, msg):
    cfg = json.loads((CATALOG / "kimi-k2.5.json").read_text())
    cfg["text_config"]["quantization_config"]["config_groups"]["group_0"]["weights"].update(change)
    with pytest.raises(ConfigError, match=msg):
        ModelSpec.from_file(_write(tmp_path, cfg))
    cfg = json.loads((CATALOG / "kimi-k2.5.json").read_text())
    cfg["text_config"]["quantization_config"]["ignore"] = ["lm_head"]
    with pytest.raises(ConfigError, match="quantization_config.ignore"):
        ModelSpec.from_file(_write(tmp_path, cfg))
