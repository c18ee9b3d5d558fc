"""Distributed training: 2 CPU processes (gloo on 127.0.0.1) started by `python -m fastlib.launch`, against a
single-process run at the same global batch size; and the pieces that run without a process group."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler, SequentialSampler

from fastlib import basic_data, basic_train, distributed, progress
from fastlib.basic_train import load_learner
from fastlib.callbacks import CSVLogger, SaveModelCallback, csv_logger, tracker
from fastlib.distributed import ShardSampler, gather_batch, setup_distrib, valid_shard_plan
from fastlib.launch import torchrun_args
from fastlib.testing import fake_learner

SCRIPTS = Path(__file__).parent / 'distributed_scripts'
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPTS))
import tiny_ddp  # noqa: E402


def _launch(out_dir: Path, mode: str, timeout: float = 120, dist_timeout: float = 60,
            script: str = 'tiny_ddp.py') -> subprocess.CompletedProcess:
    "Run `script` on 2 processes through fastlib.launch (a hang fails the test at `timeout`)."
    env = {**os.environ, 'FASTLIB_DIST_TIMEOUT': str(dist_timeout), 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    cmd = [sys.executable, '-m', 'fastlib.launch', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
           '--master_port', str(_free_port()), str(SCRIPTS / script), str(out_dir), mode]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory):
    "One 2-process run (lr_find, fit_one_cycle 2 epochs, SaveModelCallback, CSVLogger, export) and its reference."
    out = tmp_path_factory.mktemp('ddp')
    proc = _launch(out, 'fit')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ref_dir = tmp_path_factory.mktemp('single')
    single = tiny_ddp.run(str(ref_dir), 'single')
    ranks = [json.loads((out / f'rank{r}.json').read_text()) for r in range(2)]
    return out, ranks, single, proc


def test_ranks_agree_and_match_single_process(ddp_run):
    _, (r0, r1), single, _ = ddp_run
    # Every rank reports the same numbers: validation gathered, training loss averaged over the ranks.
    for key in ('val_losses', 'metrics', 'losses', 'validate', 'lr_find', 'n_batches'):
        assert r0[key] == r1[key], key
    assert r0['weights'] == r1['weights']
    # One process at the same global batch (the same items per step) gets the same numbers, up to float rounding
    # (a sum over 16 items in one batch vs two sums of 8 averaged).
    assert r0['n_batches'] == single['n_batches'] == [6, 6]
    assert r0['val_losses'] == pytest.approx(single['val_losses'], rel=1e-5)
    assert [m[0] for m in r0['metrics']] == pytest.approx([m[0] for m in single['metrics']], abs=1e-6)  # 1 item: 0.027
    assert r0['losses'] == pytest.approx(single['losses'], rel=1e-5)
    assert r0['weights'] == pytest.approx(single['weights'], rel=1e-5, abs=1e-6)
    assert r0['lr_find'] == pytest.approx(single['lr_find'], rel=1e-6)
    assert r0['model_type'] == 'Sequential'   # the DDP wrapper is gone after the fit


def test_only_rank_0_writes(ddp_run):
    out, (r0, _), _, proc = ddp_run
    assert sorted(p.name for p in (out / 'models').iterdir()) == ['best.pth']   # one checkpoint, no temp files
    rows = (out / 'history.csv').read_text().splitlines()
    assert rows[0].split(',') == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
    assert len(rows) == 3   # header + 2 epochs: rank 1 appended nothing
    assert [float(v) for v in rows[2].split(',')[2:4]] == pytest.approx([r0['val_losses'][1], r0['metrics'][1][0]],
                                                                           abs=1e-6)
    # The epoch table and SaveModelCallback's messages print once.
    assert proc.stdout.count('train_loss') == 1 and proc.stdout.count('LR Finder is complete') == 1
    assert proc.stdout.count('Better model found at epoch 1') == 1
    learn = load_learner(out)   # the export holds the trained weights
    assert [float(p.detach().double().sum()) for p in learn.model.parameters()] == pytest.approx(r0['weights'])


def test_crash_of_one_rank_ends_the_job_and_names_it(tmp_path):
    proc = _launch(tmp_path, 'crash', timeout=90, dist_timeout=30)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'RuntimeError: boom on rank 1' in err
    summary = err[err.index('Root Cause'):]
    assert 'rank      : 1 (local_rank: 1)' in summary and 'boom on rank 1' in summary


@pytest.mark.slow
def test_stuck_rank_times_out(tmp_path):
    "A rank that hangs (no crash) makes the others fail after the process group's timeout, which ends the job."
    proc = _launch(tmp_path, 'hang', timeout=120, dist_timeout=5)
    assert proc.returncode != 0
    assert 'rank      : 0' in proc.stderr[proc.stderr.index('Root Cause'):]


@pytest.mark.slow
def test_mixed_precision_under_ddp(tmp_path):
    proc = _launch(tmp_path, 'fp16')
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2))
    assert r0['val_losses'] == r1['val_losses'] and r0['weights'] == r1['weights']
    assert r0['val_losses'][-1] < 1.1   # it trains (chance level is log(3) = 1.099)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['vision', 'text'])
def test_cnn_and_text_classifier_under_ddp(tmp_path, kind):
    "A CNN (batch norm) and an AWD-LSTM classifier (reset each epoch; padded texts of other lengths on each rank)."
    proc = _launch(tmp_path, kind, timeout=240, script='domains.py')
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2))
    assert r0 == r1 and len(r0['val_losses']) == 1


# --- Without a process group -----------------------------------------------------------------------------

@pytest.mark.parametrize('n,bs,world', [(37, 8, 2), (5, 4, 2), (1, 8, 2), (10, 3, 3), (16, 8, 2), (7, 2, 4)])
def test_valid_shard_plan_covers_each_item_once(n, bs, world):
    order = list(range(n))[::-1]   # any order the validation sampler gives
    plans = [valid_shard_plan(order, bs, world, r) for r in range(world)]
    counts = plans[0][1]
    assert all(p[1] == counts for p in plans)   # every rank knows every rank's counts
    assert all(len(p[0]) == len(counts) for p in plans)   # the same number of steps everywhere (no collective hangs)
    # Concatenating the real items of each step in rank order gives the order back: each item once, in order.
    rebuilt = [i for k in range(len(counts)) for r in range(world) for i in plans[r][0][k][:counts[k][r]]]
    assert rebuilt == order
    assert all(len(b) >= 1 for p in plans for b in p[0])   # a rank with nothing loads one dummy item
    assert all(sum(c) <= bs * world for c in counts)


def test_valid_metric_on_unequal_shards_equals_full_set():
    "Mean-of-batch weighting over gathered global batches = the metric on the whole set (oracle: one big batch)."
    torch.manual_seed(0)
    out, targ = torch.randn(37, 3), torch.randint(0, 3, (37,))
    loss = nn.CrossEntropyLoss()
    world, bs = 2, 8
    plans = [valid_shard_plan(list(range(37)), bs, world, r) for r in range(world)]
    total, count = 0., 0
    for k, counts in enumerate(plans[0][1]):
        # what gather_batch returns: each rank's real rows, in rank order
        rows = [i for r in range(world) for i in plans[r][0][k][:counts[r]]]
        total += float(loss(out[rows], targ[rows])) * len(rows)
        count += len(rows)
    assert count == 37
    assert total / count == pytest.approx(float(loss(out, targ)), rel=1e-6)


def test_shard_sampler_splits_a_custom_order_the_same_way_on_every_rank():
    class Shuffled(torch.utils.data.Sampler):   # a custom sampler drawing from numpy's global generator
        def __len__(self):
            return 11

        def __iter__(self):
            import numpy as np
            return iter(np.random.permutation(11).tolist())

    shards = [ShardSampler(Shuffled(), 2, r, seed=5) for r in range(2)]
    for epoch in (0, 1):
        for s in shards:
            s.set_epoch(epoch)
        a, b = list(shards[0]), list(shards[1])
        assert len(a) == len(b) == len(shards[0]) == 6   # padded to the same length
        assert set(a) | set(b) == set(range(11))
    orders = []
    for epoch in (0, 1):
        shards[0].set_epoch(epoch)
        orders.append(list(shards[0]))
    assert orders[0] != orders[1]   # set_epoch reshuffles


def test_gather_batch_is_identity_without_peers(monkeypatch):
    "With one process in the group (world 1), gathering keeps the real rows only."
    _init_single_process_group(monkeypatch)
    try:
        t = torch.arange(12.).view(4, 3)
        assert torch.equal(gather_batch(t, [3]), t[:3])
        res = gather_batch([t, (torch.ones(4, dtype=torch.bool),)], [4])
        assert torch.equal(res[0], t) and res[1][0].dtype == torch.bool and res[1][0].all()
        assert gather_batch(t.bfloat16(), [2]).dtype == torch.bfloat16
    finally:
        torch.distributed.destroy_process_group()


def _init_single_process_group(monkeypatch):
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(_free_port()))
    torch.distributed.init_process_group('gloo', rank=0, world_size=1)


def test_to_distributed_without_process_group_trains_as_before():
    "A script written for the launcher also runs with plain python: the callback does nothing."
    a, b = fake_learner(), fake_learner()
    b.to_distributed()
    assert isinstance(b.distributed_trainer, distributed.DistributedTrainer)
    torch.manual_seed(1)
    a.fit(1, 1e-2)
    torch.manual_seed(1)
    b.fit(1, 1e-2)
    assert a.recorder.val_losses == b.recorder.val_losses
    assert isinstance(b.data.train_dl.dl.sampler, RandomSampler)
    assert isinstance(b.data.valid_dl.dl.sampler, SequentialSampler)


def test_shards_and_restores_in_a_world_of_one(monkeypatch):
    "In a process group, the fit runs under DDP on the shards and gives the model and valid loader back after."
    _init_single_process_group(monkeypatch)
    try:
        learn = fake_learner(train_length=64, valid_length=37, batch_size=8)
        learn.to_distributed(seed=3)
        assert isinstance(learn.data.train_dl.dl.sampler, torch.utils.data.DistributedSampler)
        seen = []

        class Spy(basic_train.Callback):
            def on_batch_begin(self, **kwargs):
                seen.append(isinstance(learn.model, nn.parallel.DistributedDataParallel))

        ref = learn.validate()
        learn.data.batch_size = 4   # DeviceDataLoader rebuilds the loader around the shard: still one shard
        valid_dl = learn.data.valid_dl.dl
        learn.fit(1, 1e-3, callbacks=[Spy()])
        assert type(learn.data.train_dl.dl.sampler) is torch.utils.data.DistributedSampler
        assert len(learn.data.train_dl) == 64 // 4
        assert seen and all(seen)
        assert type(learn.model).__name__ == 'Sequential' and learn.data.valid_dl.dl is valid_dl
        assert learn.recorder.val_losses[0] == pytest.approx(learn.validate()[0], rel=1e-5)
        assert learn.validate()[0] != ref[0]   # it trained
    finally:
        torch.distributed.destroy_process_group()


def test_loader_that_builds_its_own_batches_is_refused(monkeypatch):
    class OwnBatches(torch.utils.data.DataLoader):
        def __iter__(self):
            yield from super().__iter__()

    _init_single_process_group(monkeypatch)
    try:
        learn = fake_learner()
        learn.data.train_dl.dl = OwnBatches(learn.data.train_ds, batch_size=8)
        with pytest.raises(TypeError, match=r"the training loader \(OwnBatches\) builds its batches itself \(e.g. a "
                                            r"tabular or language-model loader\)\. Train this kind of data on one"):
            learn.to_distributed()
    finally:
        torch.distributed.destroy_process_group()


def test_rank_other_than_0_writes_nothing(tmp_path, monkeypatch):
    "Faking rank 1: save, export (learner and data), CSVLogger, SaveModelCallback and plots write or draw nothing."
    for module in (basic_train, basic_data, csv_logger, tracker, progress):
        monkeypatch.setattr(module, 'rank_distrib', lambda: 1)
    learn = fake_learner(path=tmp_path)
    learn.data.path = tmp_path
    learn.data.save()
    learn.data.export()
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn), SaveModelCallback(learn, every='epoch', name='m')])
    assert learn.save('x', return_path=True) == tmp_path / 'models' / 'x.pth'
    learn.export()
    assert list(tmp_path.rglob('*')) == []
    assert learn.recorder.plot_losses(return_fig=True) is None
    assert isinstance(progress.master_bar(range(2)), progress.PlainMasterBar)
    assert not progress.master_bar(range(2)).show


def test_setup_distrib(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    assert setup_distrib() == 0 and not torch.distributed.is_initialized()   # plain python: nothing to join
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.delenv('MASTER_ADDR', raising=False)
    with pytest.raises(RuntimeError, match=r'WORLD_SIZE is 2 but RANK, MASTER_ADDR, MASTER_PORT is not set: start the '
                                           r'script with `python -m fastlib.launch --nproc_per_node 2'):
        setup_distrib()


def test_sync_bn_on_cpu_says_it_needs_gpus():
    with pytest.raises(ValueError, match="sync_bn=True needs GPUs"):
        fake_learner().to_distributed(sync_bn=True)


@pytest.mark.cuda
def test_convert_sync_batchnorm_shares_parameters():
    learn = fake_learner()
    learn.model.cuda()
    learn.data.device = torch.device('cuda')
    bn = learn.model[1]
    distributed.convert_sync_batchnorm(learn)
    assert isinstance(learn.model[1], nn.SyncBatchNorm) and learn.model[1].weight is bn.weight
    assert any(isinstance(m, nn.SyncBatchNorm) for g in learn.layer_groups for m in g.modules())


def test_launcher_hands_torchrun_its_options_and_wraps_the_script():
    args = torchrun_args(['--nproc_per_node', '2', '--nnodes', '1', 'train.py', '--lr', '0.1'])
    assert args == ['--nproc_per_node', '2', '--nnodes', '1', '--module', 'fastlib.launch', '--fastlib-worker',
                    'train.py', '--lr', '0.1']
    with pytest.raises(ValueError, match='fastlib.launch runs a script file'):
        torchrun_args(['-m', 'some.module'])


def test_distributed_recorder_and_read_metrics(tmp_path):
    "fastai v1's per-rank files: each rank writes its own, read_metrics averages them (or stacks with reduce=False)."
    learn = fake_learner(path=tmp_path, metrics=['accuracy'])
    learn.fit(2, 1e-2, callbacks=[distributed.DistributedRecorder(learn, cache_dir='cache')])
    rec = learn.recorder
    losses, metrics = (np.load(tmp_path / 'cache' / f'{n}_0.npy') for n in ('losses', 'metrics'))
    assert losses.tolist() == pytest.approx(rec.losses)
    assert np.allclose(metrics, [[v, *m] for v, m in zip(rec.val_losses, rec.metrics)]) and metrics.shape == (2, 2)
    # What rank 1 would write: here its numbers + 1.
    np.save(tmp_path / 'cache' / 'losses_1.npy', losses + 1)
    np.save(tmp_path / 'cache' / 'metrics_1.npy', metrics + 1)
    mean_losses, mean_metrics = distributed.read_metrics(tmp_path / 'cache', 2)
    assert np.allclose(mean_losses, losses + 0.5) and np.allclose(mean_metrics, metrics + 0.5)
    all_losses, _ = distributed.read_metrics(tmp_path / 'cache', 2, reduce=False)
    assert all_losses.shape == (2, len(losses))
    with pytest.raises(FileNotFoundError, match=r"No DistributedRecorder files of rank\(s\) \[2\] in .*cache"):
        distributed.read_metrics(tmp_path / 'cache', 3)
