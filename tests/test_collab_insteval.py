"""InstEval ratings: a dot-product model clearly beats predicting the training mean."""
import pandas as pd
import pytest
import torch

from fastlib.collab import CollabDataBunch, collab_learner
from fastlib.progress import no_progress


@pytest.mark.slow
def test_insteval_dot_product_beats_the_training_mean(shared_data):
    ratings = pd.read_csv(shared_data / 'insteval.csv')[['user', 'item', 'rating']]
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="not seen in training"):  # a few students appear only in validation
        data = CollabDataBunch.from_df(ratings, seed=42, valid_pct=0.2, bs=1024, device='cpu', num_workers=0)
    train_y, valid_y = torch.as_tensor(data.train_ds.y.items), torch.as_tensor(data.valid_ds.y.items)
    mean_mse = float(((valid_y - train_y.mean()) ** 2).mean())
    learn = collab_learner(data, n_factors=20, y_range=[0.5, 5.5], wd=0.5)
    with no_progress():
        learn.fit_one_cycle(4, 1e-2)
    model_mse = learn.validate()[0]
    print(f'InstEval validation MSE: training mean {mean_mse:.4f}, EmbeddingDotBias {model_mse:.4f}')
    assert model_mse < 0.9 * mean_mse
