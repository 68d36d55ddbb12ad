"""torch.distributed: ``reduce_mean`` without a process group, and the head's loss
under two-process DDP (gloo) giving the single-process gradient of the whole batch.

Tests of :mod:`torch_impl.distributed`.
"""

from __future__ import annotations

import torch
from head_fixtures import make_head

from torch_impl.distributed import is_distributed, reduce_mean


def test_reduce_mean_without_a_process_group_is_the_identity_and_copies_nothing():
    assert not is_distributed()
    t = torch.tensor([1.0, 2.0])
    assert reduce_mean(t) is t


def _ddp_worker(rank, world, init_file, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        head = _ddp_head()
        ddp = torch.nn.parallel.DistributedDataParallel(head)
        feats, gtb, gtl, metas = _ddp_batch()
        sl = slice(2 * rank, 2 * rank + 2)
        cls, reg = ddp([f[sl] for f in feats])
        losses = head.loss(cls, reg, gtb[sl], gtl[sl], metas[sl])
        sum(losses.values()).backward()
        torch.save({n: p.grad for n, p in head.named_parameters()}, f"{out_dir}/grads_{rank}.pt")
    finally:
        dist.destroy_process_group()


def _ddp_head():
    """A float64 head whose class scores start near 0.88, so that each rank's
    box-weight sum exceeds 1: mmdetection clamps ``avg_factor`` to >= 1 after
    the rank mean, and only above that clamp is DDP exactly the whole batch."""
    head = make_head(seed=0).double()
    with torch.no_grad():
        head.gfl_cls.bias.fill_(2.0)
    return head


def _ddp_batch():
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(4, 16, s, s, generator=g, dtype=torch.float64) for s in (8, 4, 2)]
    gtb = [
        torch.tensor([[4.0, 5.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]),
        torch.zeros(0, 4),  # an image without gts on rank 0
        torch.tensor([[10.0, 12.0, 30.0, 60.0]]),
        torch.tensor([[0.0, 0.0, 64.0, 64.0], [30.0, 30.0, 50.0, 44.0], [5.0, 40.0, 25.0, 62.0]]),
    ]
    gtb = [b.double() for b in gtb]
    gtl = [
        torch.tensor([2, 0]),
        torch.zeros(0, dtype=torch.long),
        torch.tensor([1]),
        torch.tensor([3, 1, 0]),
    ]
    metas = [
        {"img_shape": (64, 64)},
        {"img_shape": (60, 64)},
        {"img_shape": (64, 50)},
        {"img_shape": (64, 64)},
    ]
    return feats, gtb, gtl, metas


def test_two_process_ddp_gradients_equal_single_process_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    head = _ddp_head()
    feats, gtb, gtl, metas = _ddp_batch()
    losses = head.loss(*head(feats), gtb, gtl, metas)
    sum(losses.values()).backward()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    g0 = torch.load(tmp_path / "grads_0.pt", weights_only=True)
    g1 = torch.load(tmp_path / "grads_1.pt", weights_only=True)
    for name, p in head.named_parameters():
        torch.testing.assert_close(g0[name], g1[name])  # DDP averaged them
        torch.testing.assert_close(g0[name], p.grad, rtol=1e-9, atol=1e-12)
