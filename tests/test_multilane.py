"""MULTI-LANE model against the official code (tdemin16/multi-lane): drop & replace by hand,
image-independent selector states, raw cls_token lane start; frozen path once, S x N
summaries, per-block frozen weights, masking, gradients confined to the active lane, old lanes
untouched by later tasks; the cosine learning-rate schedule."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import require

require("timm")

from clenv.errors import DataError  # noqa: E402
from clenv.models.multilane import MultiLane  # noqa: E402
from clenv.models.vit import frozen_tokens, make_vit  # noqa: E402

S, P, PL, C = 4, 3, 2, 9
TASKS = [[0, 1, 2], [3, 4, 5], [6, 7]]  # class 8 belongs to no task


def small_vit():
    torch.manual_seed(0)
    return make_vit(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=3, num_heads=4)


def model_with(n_tasks: int = 3) -> MultiLane:
    m = MultiLane(small_vit(), C, n_selectors=S, n_prompts=P, prompt_layers=PL)
    for t in range(n_tasks):
        m.add_task(TASKS[t])
    # lanes differ (warm start makes them equal): perturb each a little, deterministically
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in range(n_tasks):
            m.selectors[t].add_(0.3 * torch.randn(m.selectors[t].shape, generator=g))
            m.prompts[t].add_(0.3 * torch.randn(m.prompts[t].shape, generator=g))
    return m


def images(b: int = 5) -> torch.Tensor:
    return torch.randn(b, 1, 16, 16, generator=torch.Generator().manual_seed(2))


def _ln(t: torch.Tensor, norm) -> torch.Tensor:
    return F.layer_norm(t, (t.shape[-1],), norm.weight, norm.bias, norm.eps)


def _mlp(blk, t: torch.Tensor) -> torch.Tensor:
    return F.gelu(t @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias) @ blk.mlp.fc2.weight.T \
        + blk.mlp.fc2.bias


def official_block(blk, cls, sel, x_l, prompts_l):
    """One lane through one block, by hand, as tdemin16/multi-lane defines it
    (multi_lane/blocks.py): PreT_Attention.forward receives norm1(x) and norm1([CLS, selectors]);
    the selectors attend (softmax of dot products / sqrt(D)) over the whole detached norm1(x);
    attention over [CLS, summaries] with prefix prompts; it returns [CLS output, the LayerNorm-ed
    selectors] (drop & replace); Block.forward adds that to [CLS, selectors] and applies the
    MLP. cls: (B, 1, D), sel: (S, D), x_l: (B, N, D), prompts_l: (2, P, D)."""
    d = cls.shape[-1]
    h = blk.attn.num_heads
    hd = d // h
    b = cls.shape[0]
    tok = torch.cat([cls, sel.expand(b, -1, -1)], dim=1)
    tn = _ln(tok, blk.norm1)
    xn = _ln(x_l, blk.norm1)
    a = torch.softmax(tn[:, 1:] @ xn.transpose(1, 2) / math.sqrt(d), dim=-1)
    seq = torch.cat([tn[:, :1], a @ xn], dim=1)
    w, bias = blk.attn.qkv.weight, blk.attn.qkv.bias
    q = seq @ w[:d].T + bias[:d]
    k = torch.cat([prompts_l[0].expand(b, -1, -1), seq @ w[d:2 * d].T + bias[d:2 * d]], dim=1)
    v = torch.cat([prompts_l[1].expand(b, -1, -1), seq @ w[2 * d:].T + bias[2 * d:]], dim=1)
    heads = []
    for i in range(h):
        sl = slice(i * hd, (i + 1) * hd)
        att = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(hd), dim=-1)
        heads.append(att @ v[..., sl])
    out = torch.cat(heads, dim=-1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
    out = torch.cat([out[:, :1], tn[:, 1:]], dim=1)  # drop & replace
    tok = tok + out
    tok = tok + _mlp(blk, _ln(tok, blk.norm2))
    return tok[:, :1], tok[:, 1:]


def test_lane_block_matches_the_official_rule_by_hand():
    m = model_with(1)
    x = images()
    toks = frozen_tokens(m.vit, x)
    assert len(toks) == len(m.vit.blocks) + 1 and toks[0].shape == (5, 17, 32)
    torch.testing.assert_close(m.vit.norm(toks[-1]), m.vit.forward_features(x))
    cls = m.vit.cls_token.detach().expand(5, 1, 32)
    sel = m.selectors[0].detach()
    for i in range(2):  # block 0 (first) and 1 (a later one), both with prompts
        blk = m.vit.blocks[i]
        pr = m.prompts[0][i].detach()
        got_cls, got_sel = m.lane_block(blk, cls, sel[None], toks[i], pr[None])
        want_cls, want_sel = official_block(blk, cls, sel, toks[i], pr)
        torch.testing.assert_close(got_cls, want_cls, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_sel[0].expand(5, -1, -1), want_sel, atol=1e-5, rtol=1e-5)
        cls, sel = want_cls, want_sel[0]


def test_selector_states_never_depend_on_the_image():
    """Drop & replace (official multi_lane/blocks.py): after every block the selector states
    are the same for two different images (to 1e-6) and follow s + LN1(s), then the MLP; the
    lane CLS does depend on the image."""
    m = model_with(3)
    a, b = images(1), -2.0 * images(1) + 1.0
    states = []
    with torch.no_grad():
        for img in (a, b):
            m.trace = []
            m(img)
            states.append(m.trace)
    assert len(states[0]) == len(m.vit.blocks) + 1
    s = torch.stack([m.selectors[t].detach() for t in range(3)])  # (L, S, D)
    for i, ((ca, sa), (cb, sb)) in enumerate(zip(*states, strict=True)):
        assert (sa - sb).abs().max() <= 1e-6, i
        torch.testing.assert_close(sa[:, 0], s, atol=1e-5, rtol=1e-5)
        if i:
            assert (ca - cb).abs().max() > 1e-3, i
        if i < len(m.vit.blocks):  # the hand recursion of the next block
            blk = m.vit.blocks[i]
            s = s + _ln(s, blk.norm1)
            s = s + _mlp(blk, _ln(s, blk.norm2))


def test_lane_cls_starts_from_the_raw_cls_token():
    """Official vision_transformer.py (forward_features): the lane CLS is cls_token itself,
    without the position embedding the frozen path adds."""
    m = model_with(2)
    x = images()
    assert m.vit.pos_embed[0, 0].abs().max() > 0
    m.trace = []
    with torch.no_grad():
        m(x)
    cls0 = m.trace[0][0]  # (L, B, D)
    want = m.vit.cls_token.detach().reshape(1, 1, -1).expand(2, 5, -1)
    assert torch.equal(cls0, want)
    assert not torch.allclose(cls0[0], frozen_tokens(m.vit, x)[0][:, 0])


def test_head_takes_the_l2_normalised_final_norm_lane_cls_and_sums_masked_lanes():
    """Official vision_transformer.py (forward_features, forward_head with head_mode 'concat'
    and normalize 'pre-head'): final norm on each lane's CLS, L2 normalisation, the one shared
    head, each lane's logits multiplied by its task's class mask, summed over lanes."""
    m = model_with(3)
    x = images()
    m.trace = []
    with torch.no_grad():
        out = m(x)
        cls = m.trace[-1][0]  # (L, B, D) after the last block
        feat = F.layer_norm(cls, (32,), m.vit.norm.weight, m.vit.norm.bias, m.vit.norm.eps)
        feat = feat / feat.norm(dim=-1, keepdim=True)
        logits = feat @ m.head.weight.T + m.head.bias  # (L, B, C)
        mask = torch.zeros(3, C)
        for t, cls_t in enumerate(TASKS):
            mask[t, cls_t] = 1.0
        torch.testing.assert_close(out, (logits * mask[:, None]).sum(0), atol=1e-6, rtol=1e-5)


def test_without_drop_and_replace_the_summaries_travel_on():
    """drop_replace=False is the official --disable_dandr ablation: summaries in block 0 only,
    then [CLS, summary outputs] go through the later blocks as ordinary tokens."""
    m = model_with(1)
    m.drop_replace = False
    m.record, m.trace = [], []
    with torch.no_grad():
        out = m(images(2))
    assert m.record == [(2, S, 17)]  # one summarisation, in block 0
    sel_after = m.trace[1][1][0]  # (B, S, D) after block 0
    assert (sel_after[0] - sel_after[1]).abs().max() > 1e-4
    assert out.shape == (2, C) and torch.isfinite(out).all()


def test_lane_attention_uses_each_blocks_own_weights(monkeypatch):
    m = model_with(1)
    x = images()
    cached = frozen_tokens(m.vit, x, final=False)
    # freeze the frozen path's tokens so that only the lane path sees weight changes
    monkeypatch.setattr("clenv.models.multilane.frozen_tokens", lambda *a, **k: cached)
    with torch.no_grad():
        base = m(x)
        unrelated = copy.deepcopy(m.vit.blocks[1].attn.qkv)
        unrelated.weight.add_(1.0)
        assert torch.equal(m(x), base)
        # a random perturbation (a constant one would vanish on LayerNorm-ed, zero-mean inputs)
        delta = 0.5 * torch.randn(m.vit.blocks[1].attn.qkv.weight.shape,
                                  generator=torch.Generator().manual_seed(4))
        unrelated.weight.add_(delta)
        assert torch.equal(m(x), base)
        m.vit.blocks[1].attn.qkv.weight.add_(delta)
        changed = m(x)
        assert not torch.allclose(changed, base)
        m.vit.blocks[1].attn.qkv.weight.sub_(delta)
        m.vit.blocks[2].attn.proj.weight.mul_(1.5)
        assert not torch.allclose(m(x), base) and not torch.allclose(m(x), changed)


def test_selector_attention_is_s_by_n_at_every_layer():
    m = model_with(3)
    m.record = []
    m(images(), lanes=[0, 2])
    assert m.record == [(2 * 5, S, 17)] * 3  # every token of the block input, CLS included


def test_frozen_path_runs_once_whatever_the_number_of_lanes():
    counts: dict[str, int] = {}

    def run(n_lanes: int) -> dict[str, int]:
        m = MultiLane(small_vit(), 10, n_selectors=S, n_prompts=P, prompt_layers=PL)
        for t in range(n_lanes):
            m.add_task([2 * t, 2 * t + 1])
        counts.clear()
        mods = {"patch_embed": m.vit.patch_embed}
        mods.update({f"block{i}": b for i, b in enumerate(m.vit.blocks)})
        for name, mod in mods.items():
            mod.register_forward_hook(
                lambda *_, name=name: counts.__setitem__(name, counts.get(name, 0) + 1))
        out = m(images())
        assert out.shape == (5, 10)
        return dict(counts)

    one, five = run(1), run(5)
    assert one == five
    assert one["patch_embed"] == 1 and all(v <= 1 for v in one.values())


def test_masking_per_lane_and_unassigned_classes_are_zero():
    m = model_with(3)
    x = images()
    with torch.no_grad():
        base = m(x)
        assert torch.equal(base[:, 8], torch.zeros(5))
        for j in range(3):
            for t in range(3):
                mm = copy.deepcopy(m)
                mm.selectors[t].zero_()
                out = mm(x)
                same = torch.equal(out[:, TASKS[j]], base[:, TASKS[j]])
                assert same == (t != j), (j, t)
        # one lane alone gives exactly its classes; the sum of single lanes is the full output
        singles = [m(x, lanes=[t]) for t in range(3)]
        for t in range(3):
            others = [c for c in range(C) if c not in TASKS[t]]
            assert torch.equal(singles[t][:, others], torch.zeros(5, len(others)))
        torch.testing.assert_close(sum(singles), base)


def test_gradients_only_reach_the_active_lane_and_its_head_rows():
    m = model_with(3)
    t = 1
    x = images()
    y = torch.randint(0, 2, (5, len(TASKS[t])), generator=torch.Generator().manual_seed(3))
    logits = m(x, lanes=[t])[:, TASKS[t]]
    F.binary_cross_entropy_with_logits(logits, y.float()).backward()
    for p in m.vit.parameters():
        assert p.grad is None
    for u in range(3):
        for p in (m.selectors[u], m.prompts[u]):
            if u == t:
                assert p.grad is not None and p.grad.abs().sum() > 0
            else:
                assert p.grad is None or not p.grad.any()
    other = [c for c in range(C) if c not in TASKS[t]]
    assert m.head.weight.grad[TASKS[t]].abs().sum() > 0
    assert not m.head.weight.grad[other].any() and not m.head.bias.grad[other].any()
    assert set(map(id, m.trainable_parameters(t))) == {
        id(m.selectors[t]), id(m.prompts[t]), id(m.head.weight), id(m.head.bias)}


def _train(m: MultiLane, t: int, steps: int = 4) -> None:
    opt = torch.optim.Adam(m.trainable_parameters(t), lr=0.05)
    g = torch.Generator().manual_seed(10 + t)
    for _ in range(steps):
        x = torch.randn(6, 1, 16, 16, generator=g)
        y = torch.randint(0, 2, (6, len(TASKS[t])), generator=g).float()
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(m(x, lanes=[t])[:, TASKS[t]], y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.trainable_parameters(t), 1.0)
        opt.step()


def test_old_lane_bit_identical_after_later_tasks_and_warm_start():
    m = MultiLane(small_vit(), C, n_selectors=S, n_prompts=P, prompt_layers=PL)
    m.add_task(TASKS[0])
    # orthogonal init: rows of the selectors are orthonormal
    sel = m.selectors[0].detach()
    torch.testing.assert_close(sel @ sel.T, torch.eye(S))
    vit_before = copy.deepcopy(m.vit.state_dict())
    m.train()
    assert not m.vit.training
    sel0_init = m.selectors[0].detach().clone()
    _train(m, 0)
    assert not torch.equal(m.selectors[0].detach(), sel0_init)
    snap = {"sel": m.selectors[0].detach().clone(), "pro": m.prompts[0].detach().clone(),
            "w": m.head.weight[TASKS[0]].detach().clone(),
            "b": m.head.bias[TASKS[0]].detach().clone()}
    assert m.add_task(TASKS[1]) == 1
    assert torch.equal(m.selectors[1], m.selectors[0]) and torch.equal(m.prompts[1], m.prompts[0])
    assert m.selectors[1] is not m.selectors[0]
    _train(m, 1)
    assert not torch.equal(m.selectors[1].detach(), snap["sel"])
    assert torch.equal(m.selectors[0], snap["sel"]) and torch.equal(m.prompts[0], snap["pro"])
    assert torch.equal(m.head.weight[TASKS[0]], snap["w"])
    assert torch.equal(m.head.bias[TASKS[0]], snap["b"])
    for k, v in m.vit.state_dict().items():
        assert torch.equal(v, vit_before[k]), k


def test_add_task_rejects_bad_classes():
    m = MultiLane(small_vit(), C, n_selectors=S, n_prompts=P, prompt_layers=PL)
    m.add_task([0, 1])
    for bad in ([], [1, 2], [9], [3, 3]):
        with pytest.raises(ValueError):
            m.add_task(bad)
    with pytest.raises(ValueError):
        m(images(), lanes=[1])


def test_make_vit_weights(tmp_path: Path):
    vit = small_vit()
    good = tmp_path / "vit.pt"
    torch.save({**vit.state_dict(), "head.weight": torch.zeros(3, 32)}, good)
    loaded = make_vit(16, 4, 1, 32, 3, 4, weights=str(good))
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in vit.state_dict().items())
    st = pytest.importorskip("safetensors.torch")
    sfile = tmp_path / "vit.safetensors"
    st.save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(sfile))
    make_vit(16, 4, 1, 32, 3, 4, weights=str(sfile))
    with pytest.raises(DataError, match=r"^model\.weights: .*not found"):
        make_vit(16, 4, 1, 32, 3, 4, weights=str(tmp_path / "nope.pt"))
    with pytest.raises(DataError, match=r"^model\.weights: .*missing keys"):
        make_vit(16, 4, 1, 32, 4, 4, weights=str(good))  # one block more
    with pytest.raises(DataError, match=r"^model\.weights: .*wrong shapes"):
        make_vit(16, 4, 1, 48, 3, 4, weights=str(good))  # wider
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"^model\.weights: cannot read"):
        make_vit(16, 4, 1, 32, 3, 4, weights=str(junk))


def test_cosine_schedule_matches_cosine_annealing_lr_by_hand():
    """Official multi_lane/engine.py (train_and_evaluate): CosineAnnealingLR(T_max=epochs),
    stepped after each epoch, eta_min 0. Hand values for lr 0.03, 5 epochs:
    0.03 * (1 + cos(pi e / 5)) / 2, cos(pi/5) = 0.809017, cos(2 pi/5) = 0.309017."""
    from clenv.strategies.multilane import cosine_annealing_lr

    want = [0.03, 0.0271353, 0.0196353, 0.0103647, 0.0028647]
    got = [cosine_annealing_lr(0.03, e, 5) for e in range(5)]
    assert got == pytest.approx(want, abs=1e-7)
    # PyTorch's own scheduler, stepped per epoch, gives the same rates
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.03)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(want, abs=1e-7)
