"""Memory: repeated fits in one process do not accumulate Python objects or tensors."""
import gc
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import pytest
import torch

from fastlib.testing import fake_learner


def _live_tensors() -> int:
    with warnings.catch_warnings():   # isinstance on some of torch's deprecated module attributes warns
        warnings.simplefilter('ignore')
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_twenty_fits_do_not_grow_memory():
    learn = fake_learner()
    for _ in range(3):   # warm-up: optimizer state, caches and lazily built objects exist after these
        learn.fit(1, 1e-3)
    gc.collect()
    tracemalloc.start()
    try:
        before, tensors_before = tracemalloc.take_snapshot(), _live_tensors()
        for _ in range(20):
            learn.fit(1, 1e-3)
        gc.collect()
        after, tensors_after = tracemalloc.take_snapshot(), _live_tensors()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, 'filename'))
    print(f'{growth} bytes, {tensors_before} -> {tensors_after} tensors')
    # The recorder keeps the latest fit's history only; a leak of one batch or one model per fit would be far above.
    assert growth < 256 * 1024, [str(s) for s in after.compare_to(before, 'lineno')[:5]]
    assert tensors_after <= tensors_before, (tensors_before, tensors_after)


def test_get_preds_holds_what_it_returns_and_one_batch(tmp_path):
    "In a fresh process: the peak memory of get_preds on 16,000 outputs of 2,000 floats (128 MB) stays under 1.5x that."
    code = textwrap.dedent("""
        import resource, torch
        from torch import nn
        from fastlib.basic_data import DataBunch
        from fastlib.basic_train import Learner
        from fastlib.testing import FakeDataset
        torch.set_num_threads(1)
        x, y = torch.randn(16000, 4), torch.randint(0, 2000, (16000,))
        ds = FakeDataset(x, y, [str(i) for i in range(2000)])
        data = DataBunch.create(ds, ds, bs=500, num_workers=0)
        learn = Learner(data, nn.Linear(4, 2000))
        learn.get_preds(n_batch=2)                      # warm up: allocator, lazily built objects
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        preds, targs = learn.get_preds(activ=lambda o: o)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((peak - base) * 1024 / preds.numel() / 4, tuple(preds.shape), len(targs))
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    ratio, *rest = out.stdout.split()
    assert ' '.join(rest) == '(16000, 2000) 16000'
    assert float(ratio) < 1.5, f'get_preds peaked at {float(ratio):.2f}x the size of what it returned'


def test_gathered_batches_equal_concatenation_whatever_their_shapes():
    from fastlib.basic_train import _Gathered
    torch.manual_seed(0)
    same = [(torch.randn(4, 3), [torch.arange(4), torch.ones(4, 2)]) for _ in range(3)]
    g = _Gathered(12)
    for b in same:
        g.add(b)
    out = g.result()
    assert torch.equal(out[0], torch.cat([b[0] for b in same]))
    assert torch.equal(out[1][1], torch.cat([b[1][1] for b in same])) and isinstance(out[1], list)
    g = _Gathered(100)                       # stopped early (n_batch): only what came, not the empty rest
    g.add(torch.ones(4, 2))
    assert g.result().shape == (4, 2)
    ragged = [torch.randn(4, 5), torch.randn(4, 5), torch.randn(2, 7)]   # padded to each batch's own length
    g = _Gathered(10)
    for b in ragged[:2]:
        g.add(b)
    g.add(ragged[2])
    with pytest.raises(RuntimeError):        # as torch.cat would: the shapes cannot be joined
        g.result()
    g = _Gathered(10)
    for b in ragged[:2] + [torch.randn(2, 5)]:
        g.add(b)
    assert g.result().shape == (10, 5)
