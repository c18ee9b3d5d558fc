"""Memory: repeated fits in one process do not accumulate Python objects or tensors."""
import gc
import tracemalloc
import warnings

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
