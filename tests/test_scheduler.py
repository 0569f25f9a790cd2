"""KV block accounting and preemption mechanics shared by every policy."""

from collections import deque

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
