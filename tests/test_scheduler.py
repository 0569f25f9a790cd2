"""KV block accounting and preemption mechanics shared by every policy."""

from collections import deque

import pytest

from hermes_core import BlockManager, EngineLimits, Request, SchedulerState, Sequence


def _seq(i, prompt=10, out=5):
    return Sequence(Request(i, 0.0, prompt, out))


def test_blocks_are_rounded_up_and_counted_once():
    kv = BlockManager(10, 16)
    s = _seq(0, prompt=33)
    assert kv.extra_needed(s, 33) == 3
    assert kv.try_allocate(s, 33) and s.blocks == 3 and kv.free == 7
    s.num_computed = 33
    assert kv.extra_needed(s, 1) == 0  # token 34 still fits in block 3
    assert kv.try_allocate(s, 15) and s.blocks == 3  # 48 tokens = 3 blocks
    assert kv.try_allocate(s, 16) and s.blocks == 4
    kv.release(s)
    assert kv.free == 10 and s.blocks == 0 and kv.peak_used == 4


def test_allocation_fails_without_side_effects_when_full():
    kv = BlockManager(2, 16)
    a, b = _seq(0), _seq(1)
    assert kv.try_allocate(a, 20)
    assert not kv.try_allocate(b, 20)
    assert b.blocks == 0 and kv.free == 0


def test_preemption_by_recompute_frees_the_latest_admitted_sequence():
    kv = BlockManager(3, 16)
    st = SchedulerState(kv, EngineLimits(max_num_seqs=8, max_num_batched_tokens=64, max_model_len=100))
    a, b = _seq(0, prompt=16), _seq(1, prompt=16)
    for s in (a, b):
        kv.try_allocate(s, 16)
        s.num_computed = 16
        s.num_tokens = 17
        st.running.append(s)
    extra = _seq(2, prompt=16)
    kv.try_allocate(extra, 16)  # third block gone
    # a needs a new block for token 17: the latest running sequence (b) is preempted
    assert st.allocate_or_preempt(a, 1)
    assert st.running == [a]
    assert list(st.waiting) == [b]
    assert b.num_computed == 0 and b.blocks == 0 and b.req.preemptions == 1
    assert a.blocks == 2 and kv.free == 0
    assert st.preemptions == 1


def test_a_sequence_that_cannot_fit_preempts_itself_last():
    kv = BlockManager(1, 16)
    st = SchedulerState(kv, EngineLimits(max_num_seqs=8, max_num_batched_tokens=64, max_model_len=100))
    a = _seq(0, prompt=16)
    kv.try_allocate(a, 16)
    a.num_computed = 16
    st.running.append(a)
    assert not st.allocate_or_preempt(a, 1)
    assert st.running == [] and list(st.waiting) == [a] and kv.free == 1


# -- prefix caching ---------------------------------------------------------------------
def _prompt(i, prompt, ids, block=512):
    return Request(i, 0.0, prompt, 4, hash_ids=tuple(ids), hash_block_tokens=block)


def test_prefix_cache_matches_leading_blocks_and_keeps_the_last_token():
    from hermes_core import PrefixCache

    pc = PrefixCache(capacity_tokens=10_000)
    a = _prompt(0, 1200, [1, 2, 3])  # 512 + 512 + 176 tokens
    assert pc.lookup(a) == 0
    pc.insert(a)
    assert len(pc) == 3 and pc.used_tokens == 3 * 512
    # the same prompt: everything but the last token, whose logits are sampled
    assert pc.lookup(_prompt(1, 1200, [1, 2, 3])) == 1199
    # shared first block only: one block's tokens; a gap stops the match
    assert pc.lookup(_prompt(2, 2000, [1, 9, 3, 4])) == 512
    assert pc.lookup(_prompt(3, 2000, [9, 2, 3, 4])) == 0
    assert pc.lookup(Request(4, 0.0, 100, 1)) == 0  # no hash ids: never a hit
    assert pc.queries == 4 and pc.queried_tokens == 1200 + 2000 + 2000 + 1200
    assert pc.hit_tokens == 1199 + 512
    assert pc.hit_rate == pytest.approx((1199 + 512) / 6400)


def test_prefix_cache_evicts_least_recently_used_blocks():
    from hermes_core import PrefixCache

    pc = PrefixCache(capacity_tokens=4 * 512)
    pc.insert(_prompt(0, 1024, [1, 2]))
    pc.insert(_prompt(1, 1024, [3, 4]))
    assert pc.lookup(_prompt(2, 1024, [1, 2])) == 1023  # touches 1 and 2: 3, 4 are now oldest
    pc.insert(_prompt(3, 1024, [5, 6]))
    assert 3 not in pc and 4 not in pc and {1, 2, 5, 6} <= set(pc._lru)
    assert pc.used_tokens == 4 * 512
    assert PrefixCache(0).lookup(_prompt(0, 10, [1])) == 0
    with pytest.raises(ValueError, match=">= 0 tokens"):
        PrefixCache(-1)


def test_enqueue_and_preemption_skip_cached_prompt_tokens():
    from hermes_core import PrefixCache

    pc = PrefixCache(capacity_tokens=100_000)
    pc.insert(_prompt(0, 1000, [7, 8]))
    state = SchedulerState(BlockManager(100, 16), EngineLimits(max_num_seqs=8, max_num_batched_tokens=64,
                                                                 max_model_len=4096), pc)
    seq = Sequence(_prompt(1, 1000, [7, 8]))
    state.enqueue(seq)
    assert seq.num_computed == 999 and seq.remaining_prefill == 1 and state.waiting[0] is seq
    cold = Sequence(_prompt(2, 1000, [5, 6]))
    state.enqueue(cold)
    assert cold.num_computed == 0
    # blocks cover the cached context too: memory is not shared in this model
    state.waiting.popleft()
    assert state.kv.try_allocate(seq, 1) and seq.blocks == 1000 // 16 + (1000 % 16 > 0)
    state.running.append(seq)
    state.running.remove(seq)
    state.preempt(seq)
    assert seq.num_computed == 999 and seq.blocks == 0 and state.waiting[0] is seq
