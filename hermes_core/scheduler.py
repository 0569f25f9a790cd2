"""Scheduling mechanics shared by all batching policies, and the :class:`BatchingPolicy`
interface.

A serving engine keeps a FIFO ``waiting`` queue and a ``running`` list of
:class:`Sequence` objects and a paged KV cache (:class:`BlockManager`). Each engine step a
policy returns a :class:`Batch`: which sequences run and how many new tokens each
computes. This follows vLLM v1's token-centric view: a sequence with ``num_computed`` tokens
in cache and ``num_tokens`` known tokens computes up to ``num_tokens - num_computed`` tokens;
when it catches up it samples one new token. A prefill is a step with many new tokens, a
decode a step with one. Policies decide order and limits; the mechanics (block accounting,
preemption by recompute) live here so every policy obeys the same KV invariants.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel

from .workload import Request


class Sequence:
    """Engine-side state of one request.

    ``num_tokens`` = prompt tokens + tokens generated so far; ``num_computed`` = tokens whose
    KV is in the cache; ``blocks`` = KV blocks held. After a preemption by recompute,
    ``num_computed`` is 0 again and the prompt plus generated tokens are prefilled anew.
    """

    __slots__ = ("req", "num_tokens", "num_computed", "blocks", "last_token_time")

    def __init__(self, req: Request):
        self.req = req
        self.num_tokens = req.prompt_tokens
        self.num_computed = 0
        self.blocks = 0
        self.last_token_time = -1.0

    @property
    def remaining_prefill(self) -> int:
        """Tokens still to compute before the next token can be sampled."""
        return self.num_tokens - self.num_computed

    @property
    def is_decoding(self) -> bool:
        """True once the first token was produced and only one token is pending."""
        return self.req.generated_tokens > 0 and self.num_tokens - self.num_computed == 1

    def __repr__(self) -> str:
        return (f"Sequence(id={self.req.id}, tokens={self.num_tokens}, computed={self.num_computed}, "
                f"blocks={self.blocks})")


class BlockManager:
    """Paged KV cache accounting: ``total`` blocks of ``block_size`` tokens each.

    A sequence holding ``t`` tokens of KV needs ``ceil(t / block_size)`` blocks. The free
    count never goes below zero and ``used + free == total`` always holds.
    """

    __slots__ = ("total", "block_size", "free", "peak_used")

    def __init__(self, total_blocks: int, block_size: int):
        if total_blocks < 0 or block_size <= 0:
            raise ValueError(f"invalid KV cache: {total_blocks} blocks of {block_size} tokens")
        self.total = total_blocks
        self.block_size = block_size
        self.free = total_blocks
        self.peak_used = 0

    def blocks_for(self, tokens: int) -> int:
        """Blocks needed to hold ``tokens`` tokens."""
        return -(-tokens // self.block_size)

    def extra_needed(self, seq: Sequence, new_tokens: int) -> int:
        """Blocks ``seq`` must add to hold ``new_tokens`` more computed tokens."""
        need = -(-(seq.num_computed + new_tokens) // self.block_size) - seq.blocks
        return need if need > 0 else 0

    def try_allocate(self, seq: Sequence, new_tokens: int) -> bool:
        """Reserve blocks for ``new_tokens`` more tokens of ``seq``; False if not enough free."""
        need = -(-(seq.num_computed + new_tokens) // self.block_size) - seq.blocks
        if need <= 0:
            return True
        if need > self.free:
            return False
        self.free -= need
        seq.blocks += need
        used = self.total - self.free
        if used > self.peak_used:
            self.peak_used = used
        return True

    def release(self, seq: Sequence) -> None:
        """Return all of ``seq``'s blocks."""
        self.free += seq.blocks
        seq.blocks = 0

    @property
    def used(self) -> int:
        return self.total - self.free


class PrefixCache:
    """Automatic prefix caching (vLLM's APC, SGLang's RadixAttention) by prompt block hashes.

    A request names its prompt's blocks with :attr:`Request.hash_ids` (one id per
    :attr:`Request.hash_block_tokens` tokens, the last block possibly partial; equal ids at
    the same position mean an equal prefix up to there). The cache holds up to
    ``capacity_tokens`` tokens of blocks (each id counts ``hash_block_tokens``) and evicts
    the least recently used ids when full, as vLLM reuses the free-but-cached blocks of its
    KV pool in LRU order.

    :meth:`lookup` gives the number of prompt tokens whose KV is found: the leading run of
    cached block ids times the block size, at most ``prompt_tokens - 1`` (the engine always
    computes the last prompt token, whose logits it samples from, as vLLM does). Cached blocks
    are not shared in memory here: a hit saves the prefill compute, and the sequence still
    holds KV blocks for its whole context (a conservative view of memory).

    Counters: ``queries`` (lookups), ``queried_tokens`` and ``hit_tokens`` (prompt tokens
    looked up and found). Raises :class:`ValueError` for a negative capacity.
    """

    __slots__ = ("capacity_tokens", "used_tokens", "_lru", "queries", "queried_tokens", "hit_tokens")

    def __init__(self, capacity_tokens: int):
        if capacity_tokens < 0:
            raise ValueError(f"prefix cache capacity must be >= 0 tokens, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.used_tokens = 0
        self._lru: OrderedDict[int, int] = OrderedDict()  # block id -> tokens it counts
        self.queries = 0
        self.queried_tokens = 0
        self.hit_tokens = 0

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block_id: int) -> bool:
        return block_id in self._lru

    def lookup(self, req: Request) -> int:
        """Prompt tokens of ``req`` already cached (0 without ``hash_ids``); marks the
        matched blocks as recently used."""
        ids = req.hash_ids
        if not ids:
            return 0
        lru = self._lru
        matched = 0
        for h in ids:
            if h not in lru:
                break
            lru.move_to_end(h)
            matched += 1
        hit = min(matched * req.hash_block_tokens, req.prompt_tokens - 1)
        self.queries += 1
        self.queried_tokens += req.prompt_tokens
        self.hit_tokens += hit
        return hit

    def insert(self, req: Request) -> None:
        """Remember the blocks of ``req``'s prompt (after its prefill), evicting the least
        recently used ids while more than ``capacity_tokens`` are held."""
        ids = req.hash_ids
        if not ids:
            return
        lru = self._lru
        size = req.hash_block_tokens
        for h in ids:
            if h in lru:
                lru.move_to_end(h)
            else:
                lru[h] = size
                self.used_tokens += size
        while self.used_tokens > self.capacity_tokens and lru:
            self.used_tokens -= lru.popitem(last=False)[1]

    @property
    def hit_rate(self) -> float:
        """``hit_tokens / queried_tokens`` (0 before any lookup)."""
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else 0.0


class EngineLimits(BaseModel):
    """Per-step limits of a serving engine (vLLM names)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int


class Batch:
    """What one engine step runs: ``seqs[i]`` computes ``num_new[i]`` new tokens.

    :meth:`add` keeps the aggregates a step-cost model needs, so pricing a batch is O(1)
    whatever its size: ``tokens`` (all new tokens), ``sampled`` (sequences that catch up
    and sample a token), ``pf_q`` / ``pf_pairs`` / ``pf_kv`` (prefill chunks: new tokens,
    causal (query, key) pairs ``sum q*c + q(q+1)/2``, K/V tokens read ``sum c+q``) and
    ``dec_n`` / ``dec_kv`` (decodes: count and K/V tokens read ``sum c+1``), with ``c``
    the sequence's cached tokens before the step.
    """

    __slots__ = ("seqs", "num_new", "tokens", "sampled", "pf_q", "pf_pairs", "pf_kv", "dec_n", "dec_kv")

    def __init__(self) -> None:
        self.seqs: list[Sequence] = []
        self.num_new: list[int] = []
        self.tokens = self.sampled = self.pf_q = self.pf_pairs = self.pf_kv = self.dec_n = self.dec_kv = 0

    def add(self, seq: Sequence, n: int) -> None:
        """Schedule ``n`` new tokens of ``seq`` (``1 <= n <= seq.remaining_prefill``)."""
        self.seqs.append(seq)
        self.num_new.append(n)
        c = seq.num_computed
        self.tokens += n
        if c + n == seq.num_tokens:
            self.sampled += 1
        if n == 1:
            self.dec_n += 1
            self.dec_kv += c + 1
        else:
            self.pf_q += n
            self.pf_pairs += n * c + n * (n + 1) // 2
            self.pf_kv += c + n

    @property
    def num_tokens(self) -> int:
        return self.tokens

    def __len__(self) -> int:
        return len(self.seqs)


class SchedulerState:
    """The queues and KV cache a policy works on.

    ``waiting``: FIFO of sequences not running (new or preempted; preempted ones go to the
    front, as in vLLM). ``running``: sequences admitted, in admission order.
    """

    __slots__ = ("waiting", "running", "kv", "limits", "preemptions", "dropped", "prefix_cache")

    def __init__(self, kv: BlockManager, limits: EngineLimits, prefix_cache: PrefixCache | None = None):
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.kv = kv
        self.limits = limits
        self.preemptions = 0
        #: Sequences a policy gave up on, with the reason; the engine reports them.
        self.dropped: list[Sequence] = []
        #: Automatic prefix caching, or None when the engine runs without it.
        self.prefix_cache = prefix_cache

    def enqueue(self, seq: Sequence) -> None:
        """Append a new sequence to ``waiting``, skipping the prompt tokens the prefix cache
        already holds or whose KV arrived with the request (:attr:`Request.cached_tokens`):
        ``num_computed`` starts at the larger, at most ``prompt_tokens - 1``."""
        if self.prefix_cache is not None:
            seq.num_computed = self.prefix_cache.lookup(seq.req)
        cached = seq.req.cached_tokens
        if cached:
            # KV that arrived with the request (disaggregated prefill, a KV store, a forked
            # sample); the last prompt token is always computed, as vLLM does
            cached = min(cached, seq.num_tokens - 1)
            if cached > seq.num_computed:
                seq.num_computed = cached
        self.waiting.append(seq)

    def drop(self, seq: Sequence, reason: str) -> None:
        """Give up on ``seq`` (already removed from ``waiting``/``running`` by the caller):
        free its blocks and record ``reason`` ("category: details") on its request."""
        self.kv.release(seq)
        seq.req.dropped_reason = reason
        self.dropped.append(seq)

    def preempt(self, seq: Sequence) -> None:
        """Preempt ``seq`` by recompute: free its blocks, forget its computed tokens (all but
        a prefix still in the prefix cache) and put it at the front of ``waiting``. The caller removes it from ``running``."""
        self.kv.release(seq)
        seq.num_computed = self.prefix_cache.lookup(seq.req) if self.prefix_cache is not None else 0
        seq.req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(seq)

    def allocate_or_preempt(self, seq: Sequence, n: int, protect: set[int] | None = None) -> bool:
        """Reserve blocks for ``n`` more tokens of running ``seq``, preempting the
        most recently admitted other running sequences (vLLM's recompute policy) until it
        fits. Returns False (and preempts nothing more) if ``seq`` itself had to go."""
        kv = self.kv
        while not kv.try_allocate(seq, n):
            victim = self.running[-1]
            self.running.pop()
            self.preempt(victim)
            if victim is seq:
                return False
        return True


class BatchingPolicy(ABC):
    """Chooses the next batch of a serving engine.

    Built as ``cls(config)``. :meth:`schedule` is called whenever the engine is free and has
    work; it mutates ``state`` (admitting sequences from ``waiting`` into ``running``,
    allocating KV blocks, preempting) and returns the :class:`Batch` to run, or ``None`` if
    nothing can run now. It must never exceed ``state.limits`` and must allocate blocks for
    every token it schedules. A sequence already added to the batch must not be preempted
    afterwards (the batch has recorded its cached-token count): preempt from the tail of
    ``running`` while walking it from the head, as :meth:`SchedulerState.allocate_or_preempt`
    does.
    """

    Config: ClassVar[type[BaseModel]]
    #: True if prompts longer than the token budget can be split over several steps.
    chunks_prefill: ClassVar[bool] = False

    def __init__(self, config: BaseModel):
        self.config = config

    def rejection_reason(self, req: Request, limits: EngineLimits) -> str | None:
        """Why ``req`` can never be scheduled by this policy, or None."""
        if not self.chunks_prefill and req.prompt_tokens > limits.max_num_batched_tokens:
            return (f"prompt of {req.prompt_tokens} tokens exceeds max_num_batched_tokens="
                    f"{limits.max_num_batched_tokens} and the policy does not chunk prefills")
        return None

    @abstractmethod
    def schedule(self, state: SchedulerState) -> Batch | None:
        """Return the next batch, or None when nothing can run."""
