"""Rollouts (reference §2.3): a contract suite over every scheduling matrix, cached == uncached, bad inputs."""

from __future__ import annotations

import pytest
import torch
from sampling_toys import NoCacheDenoiser, OffsetAfter, ToyCausalDenoiser

from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, SamplerConfig, pyramid, sample

D = 3
CONTRACT = [
    ("autoregressive", 1, 1.0),
    ("autoregressive", 3, 1.0),
    ("pyramid", 3, 1.0),
    ("pyramid", 3, 0.5),
    ("full_sequence", 3, 1.0),
    ("trapezoid", 3, 1.0),
]
IDS = [f"{n}-chunk{c}-u{u}" for n, c, u in CONTRACT]


def _sampler(s=6, k=100, **kw) -> DiffusionForcingSampler:
    kw.setdefault("stabilization_level", 5)
    return DiffusionForcingSampler(NoiseSchedule.from_name("cosine", k), SamplerConfig(num_sampling_steps=s, **kw))


def _context(b=2, c=2, seed=100):
    return torch.randn(b, c, D, generator=torch.Generator().manual_seed(seed))


def _run(model, sampler, seed=0, **kw):
    kw.setdefault("context", _context())
    return sample(model, sampler, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize(("scheduling", "chunk", "u"), CONTRACT, ids=IDS)
def test_contract(scheduling, chunk, u):
    sampler = _sampler(eta=0.5)
    model = ToyCausalDenoiser(dim=D, window=4)
    ctx = _context()
    kw = dict(n_tokens=11, chunk_size=chunk, scheduling=scheduling, uncertainty_scale=u, context=ctx)
    out = _run(model, sampler, **kw)
    # shape, finiteness, context returned unchanged
    assert out.shape == (2, 11, D) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, :2], ctx)
    # determinism under a seed; another seed gives other samples
    assert torch.equal(out, _run(model, sampler, **kw))
    assert not torch.allclose(out, _run(model, sampler, seed=1, **kw))
    # the rollout's first tokens do not depend on how far it goes (draws are made chunk by chunk in order)
    shorter = _run(model, sampler, **{**kw, "n_tokens": 2 + chunk * 2})
    assert torch.equal(out[:, : shorter.shape[1]], shorter)
    # causality: changing the network's output from token p on (here inside a chunk) leaves tokens < p alone
    p = 2 + chunk + chunk // 2
    moved = _run(OffsetAfter(model, p), sampler, **kw)
    assert torch.equal(moved[:, :p], out[:, :p])
    assert not torch.allclose(moved[:, p], out[:, p])


def test_chunk_none_is_one_chunk():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=None)
    a = _run(model, sampler, n_tokens=7, chunk_size=None, scheduling="pyramid")
    b = _run(model, sampler, n_tokens=7, chunk_size=5, scheduling="pyramid")
    assert torch.equal(a, b)


def test_without_context_and_callable_schedule():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=4)
    out = sample(model, sampler, n_tokens=5, batch_size=3, token_shape=(D,), chunk_size=2,
                 scheduling=lambda h: pyramid(h, sampler.num_steps, 2.0), generator=torch.Generator().manual_seed(0))
    ref = sample(model, sampler, n_tokens=5, batch_size=3, token_shape=(D,), chunk_size=2,
                 scheduling="pyramid", uncertainty_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 5, D) and torch.equal(out, ref)


def test_context_fills_everything():
    ctx = _context(c=4)
    out = _run(ToyCausalDenoiser(dim=D), _sampler(), n_tokens=4, context=ctx)
    assert torch.equal(out, ctx)


def test_cond_is_sliced_with_tokens():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=3, cond_dim=2)
    cond = torch.randn(2, 9, 2, generator=torch.Generator().manual_seed(4))
    a = _run(model, sampler, n_tokens=9, cond=cond)
    b = _run(model, sampler, n_tokens=9, cond=cond, use_cache=True)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    c = _run(model, sampler, n_tokens=9, cond=cond.flip(1))
    assert torch.equal(a[:, :2], c[:, :2]) and not torch.allclose(a, c)


# --------------------------------------------------------------------- cached == uncached
WINDOW = 4
CACHE_CASES = [
    ("autoregressive", 1, {}),
    ("pyramid", 3, {}),
    ("pyramid", 3, {"eta": 1.0}),
    ("trapezoid", 4, {"eta": 0.5}),
    ("full_sequence", 2, {}),
    ("autoregressive", 1, {"k": 12, "s": 12}),  # DDPM: stabilization noise drawn once per token
    ("pyramid", 3, {"k": 12, "s": 12}),
]


@pytest.mark.parametrize(("scheduling", "chunk", "skw"), CACHE_CASES, ids=[f"{a}-{b}-{c}" for a, b, c in CACHE_CASES])
def test_cached_equals_uncached(scheduling, chunk, skw):
    sampler = _sampler(**skw)
    assert sampler.ddpm == ("k" in skw)
    model = ToyCausalDenoiser(dim=D, window=WINDOW)
    kw = dict(n_tokens=10 * WINDOW, chunk_size=chunk, scheduling=scheduling, context=_context(c=3))
    full = _run(model, sampler, **kw)
    model.calls.clear()
    cached = _run(model, sampler, use_cache=True, **kw)
    assert (full - cached).abs().max() < 1e-4
    # per-token cost stays flat: a cached call feeds at most the previous and the current chunk
    assert max(c.tokens for c in model.calls) <= max(3, chunk) + chunk
    last_chunk = (10 * WINDOW - 3) % chunk or chunk
    assert sum(c.commit for c in model.calls) == 10 * WINDOW - last_chunk  # every finished token once
    # a history of one receptive field (the window here) is exact too
    truncated = _run(model, sampler, max_history="receptive_field", **kw)
    assert (full - truncated).abs().max() < 1e-4


def test_cache_commits_every_finished_token_once():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=WINDOW)
    _run(model, sampler, n_tokens=12, chunk_size=2, context=_context(c=2), use_cache=True)
    commits = [c.commit for c in model.calls if c.commit]
    assert commits == [2, 2, 2, 2, 2]  # context, then every chunk but the last when the next one starts
    assert all(c.cached for c in model.calls)


@pytest.mark.parametrize(("scheduling", "chunk", "skw"), CACHE_CASES, ids=[f"{a}-{b}-{c}" for a, b, c in CACHE_CASES])
def test_commit_finished_equals_cached(scheduling, chunk, skw):
    sampler = _sampler(**skw)
    model = ToyCausalDenoiser(dim=D, window=None)
    kw = dict(n_tokens=23, chunk_size=chunk, scheduling=scheduling, context=_context(c=3), use_cache=True)
    cached = _run(model, sampler, **kw)
    fed, committed = sum(c.tokens for c in model.calls), sum(c.commit for c in model.calls)
    model.calls.clear()
    early = _run(model, sampler, commit_finished=True, **kw)
    assert (cached - early).abs().max() < 1e-5
    assert committed <= sum(c.commit for c in model.calls) < 23  # each token at most once; the last never
    assert all(c.cached for c in model.calls)
    if scheduling in ("pyramid", "trapezoid"):  # tokens finish at different rows: the later calls feed fewer
        assert sum(c.tokens for c in model.calls) < fed


def test_commit_finished_feeds_only_the_unfinished_tail():
    # one chunk of 6 along the pyramid (S = 3): token j is clean from row j + 3 on, so row m >= 3 commits token
    # m - 3 with the call (fed first) and feeds tokens m - 3 .. 5; the plain cached path feeds all 6 in every row
    sampler = _sampler(s=3)
    model = ToyCausalDenoiser(dim=D, window=None)
    _run(model, sampler, n_tokens=8, chunk_size=None, scheduling="pyramid", context=_context(c=2), use_cache=True,
         commit_finished=True)
    assert pyramid(6, 3).shape[0] - 1 == 8  # rows stepped
    assert [c.tokens for c in model.calls] == [2 + 6, 6, 6, 6, 5, 4, 3, 2]
    assert [c.commit for c in model.calls] == [2, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="use_cache"):
        _run(model, sampler, n_tokens=8, chunk_size=None, scheduling="pyramid", commit_finished=True)


def test_unbounded_model_cached_equals_uncached():
    sampler = _sampler(eta=1.0)
    model = ToyCausalDenoiser(dim=D, window=None)  # like an RNN: no finite receptive field
    kw = dict(n_tokens=20, chunk_size=2, scheduling="pyramid")
    a = _run(model, sampler, **kw)
    b = _run(model, sampler, use_cache=True, **kw)
    assert (a - b).abs().max() < 1e-4
    with pytest.raises(ValueError, match="receptive_field"):
        _run(model, sampler, max_history="receptive_field", **kw)


def test_sliding_window_history():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=None)
    _run(model, sampler, n_tokens=12, max_history=3)
    assert max(c.tokens for c in model.calls) == 4  # 3 past tokens + the chunk
    assert not any(c.grad for c in model.calls)


# --------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(context=torch.randn(2, 2, 4)), "context must have shape"),
        (dict(context=torch.randn(2)), "context must be"),
        (dict(context=torch.randn(2, 9, 3)), "more than n_tokens"),
        (dict(context=torch.tensor([[[0.0, float("nan"), 1.0]] * 2] * 2)), "NaN or inf"),
        (dict(context=torch.randn(2, 2, 3), batch_size=3), "batch"),
        (dict(chunk_size=9), "chunk_size"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(scheduling="zigzag"), "unknown scheduling"),
        (dict(scheduling=lambda h: torch.zeros(2, h, dtype=torch.long)), "first row"),
        (dict(cond=torch.randn(2, 5, 2)), "cond must have shape"),
        (dict(max_history=-1), "max_history"),
        (dict(n_tokens=0), "n_tokens"),
    ],
)
def test_bad_inputs(kwargs, match):
    args = dict(n_tokens=8, context=torch.randn(2, 2, 3), token_shape=(3,))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sample(ToyCausalDenoiser(dim=D), _sampler(), **args)


def test_bad_inputs_without_context():
    with pytest.raises(ValueError, match="batch_size"):
        sample(ToyCausalDenoiser(dim=D), _sampler(), n_tokens=4, token_shape=(D,))
    with pytest.raises(ValueError, match="token_shape"):
        sample(ToyCausalDenoiser(dim=D), _sampler(), n_tokens=4, batch_size=2)
    with pytest.raises(ValueError, match="no cache"):
        sample(NoCacheDenoiser(dim=D), _sampler(), n_tokens=4, batch_size=2, token_shape=(D,), use_cache=True)


def test_progress_callback_and_printing(capsys):
    seen = []
    _run(ToyCausalDenoiser(dim=D), _sampler(), n_tokens=8, chunk_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 8), (6, 8), (8, 8)]
    _run(ToyCausalDenoiser(dim=D), _sampler(), n_tokens=4, progress=True)
    assert "4/4 tokens" in capsys.readouterr().err
