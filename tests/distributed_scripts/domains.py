"""A 2-process fit of a small CNN (cnn_learner on random images) or an AWD-LSTM text classifier, for
tests/test_distributed.py: `python -m fastlib.launch --nproc_per_node 2 domains.py OUT_DIR vision|text`. Each rank
writes its validation losses and metrics to OUT_DIR/rank{r}.json."""
import json
import sys
from pathlib import Path

import torch

from fastlib.basic_data import DataBunch
from fastlib.distributed import setup_distrib
from fastlib.metrics import accuracy
from fastlib.testing import FakeDataset
from fastlib.torch_core import rank_distrib


def text_learner(out):
    from fastlib.text import AWD_LSTM, TextClasDataBunch, awd_lstm_clas_config, text_classifier_learner
    from fastlib.text.testing import fake_review_df
    df = fake_review_df(80, seed=2)
    data = TextClasDataBunch.from_df(out, df[~df.is_valid], df[df.is_valid], bs=8, min_freq=1,
                                     device=torch.device('cpu'))
    torch.manual_seed(0)
    config = dict(awd_lstm_clas_config, emb_sz=8, n_hid=16, n_layers=2)
    return text_classifier_learner(data, AWD_LSTM, config=config, pretrained=False, bptt=8, metrics=[accuracy])


def vision_learner(out):
    from fastlib.vision import models
    from fastlib.vision.learner import cnn_learner
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(47, 3, 32, 32, generator=g), torch.randint(0, 3, (47,), generator=g)
    classes = ['a', 'b', 'c']
    data = DataBunch.create(FakeDataset(x[:32], y[:32], classes), FakeDataset(x[32:], y[32:], classes), bs=8,
                            num_workers=0, device='cpu', path=out)
    torch.manual_seed(0)
    return cnn_learner(data, models.resnet18, pretrained=False, metrics=[accuracy])


if __name__ == '__main__':
    torch.set_num_threads(1)
    out, kind = Path(sys.argv[1]), sys.argv[2]
    setup_distrib()
    learn = (text_learner if kind == 'text' else vision_learner)(out).to_distributed()
    learn.fit_one_cycle(1, 1e-3)
    res = dict(val_losses=learn.recorder.val_losses, metrics=learn.recorder.metrics, n_valid=len(learn.data.valid_ds))
    (out / f'rank{rank_distrib()}.json').write_text(json.dumps(res))
