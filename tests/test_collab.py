"""fastlib.collab: models, pca, CollabDataBunch, collab_learner, predictions for known and unknown users."""
import numpy as np
import pandas as pd
import pytest
import torch

from fastlib.basic_data import DatasetType
from fastlib.collab import (CollabDataBunch, CollabLearner, CollabLine, EmbeddingDotBias, EmbeddingNN, FloatList,
                            collab_learner, pca)


def toy_ratings(n_users: int = 30, n_items: int = 20, seed: int = 0) -> pd.DataFrame:
    "Every user rates 60% of the items; ratings come from rank-2 factors plus biases and noise, on 1..5."
    rng = np.random.default_rng(seed)
    u, i = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    rows = [(f'u{a}', 100 + b, 3 + (u[a] @ i[b]) + 0.5 * np.sign(b % 3 - 1) + rng.normal(0, 0.2))
            for a in range(n_users) for b in range(n_items) if rng.random() < 0.6]
    df = pd.DataFrame(rows, columns=['userId', 'movieId', 'rating'])
    df['rating'] = df.rating.clip(1, 5).round()
    return df


def toy_data(**kwargs) -> CollabDataBunch:
    kwargs = {'seed': 0, 'bs': 32, 'device': 'cpu', 'num_workers': 0, **kwargs}
    return CollabDataBunch.from_df(toy_ratings(), **kwargs)


def test_embedding_dot_bias_forward_formula():
    torch.manual_seed(0)
    m = EmbeddingDotBias(4, n_users=5, n_items=6, y_range=(0., 5.5))
    users, items = torch.tensor([0, 3, 4]), torch.tensor([5, 1, 1])
    raw = ((m.u_weight.weight[users] * m.i_weight.weight[items]).sum(1) + m.u_bias.weight[users, 0]
           + m.i_bias.weight[items, 0])
    assert torch.allclose(m(users, items), torch.sigmoid(raw) * 5.5)
    m.y_range = None
    assert torch.allclose(m(users, items), raw)


def test_embedding_nn_is_a_tabular_model_on_the_pair():
    torch.manual_seed(0)
    m = EmbeddingNN([(5, 3), (6, 2)], layers=[8], y_range=(1., 5.)).eval()
    users, items = torch.tensor([0, 4]), torch.tensor([2, 5])
    out = m(users, items)
    assert out.shape == (2,) and ((out > 1) & (out < 5)).all()
    from fastlib.tabular import TabularModel
    assert torch.allclose(out, TabularModel.forward(m, torch.stack([users, items], 1), None)[:, 0])


def test_pca_matches_the_covariance_eigenvectors():
    x = torch.randn(50, 5) @ torch.randn(5, 5)
    res = pca(x, 3)
    centered = (x - x.mean(0)).double().numpy()
    vals, vecs = np.linalg.eigh(np.cov(centered, rowvar=False))
    expected = centered @ vecs[:, ::-1][:, :3]   # largest variance first
    np.testing.assert_allclose(np.abs(res.numpy()), np.abs(expected), atol=1e-3)


def test_from_df_defaults_split_and_classes():
    df = toy_ratings()
    data = toy_data()
    x = data.train_ds.x
    assert x.cat_names == ['userId', 'movieId'] and x.cont_names == []
    assert len(data.valid_ds) == int(0.2 * len(df)) and len(data.train_ds) + len(data.valid_ds) == len(df)
    assert isinstance(data.train_ds.y, FloatList)
    assert x.classes['movieId'] == ['#na#'] + sorted(set(df.movieId[x.inner_df.index]))
    xb, yb = next(iter(data.valid_dl))
    assert len(xb) == 2 and xb[0].shape == xb[1].shape == yb.shape == (32,) and yb.dtype == torch.float32
    again = toy_data()
    assert np.array_equal(again.valid_ds.x.codes, data.valid_ds.x.codes)  # `seed` fixes the split
    assert isinstance(data.train_ds.x[0], CollabLine)


def test_from_df_names_columns_and_test_set():
    df = toy_ratings().rename(columns={'userId': 'u', 'movieId': 'm', 'rating': 'r'})[['r', 'm', 'u']]
    data = CollabDataBunch.from_df(df, user_name='u', item_name='m', rating_name='r', test=df.iloc[:10],
                                   seed=1, device='cpu', num_workers=0)
    assert data.train_ds.x.cat_names == ['u', 'm'] and len(data.test_ds) == 10


def test_bad_ratings_input():
    with pytest.raises(ValueError, match=r"The ratings DataFrame is empty \(0 rows\)"):
        CollabDataBunch.from_df(toy_ratings().iloc[:0])
    with pytest.raises(ValueError, match=r"(?s)\['user'\] not in the DataFrame's columns.*Did you mean 'userId'\?"):
        CollabDataBunch.from_df(toy_ratings(), user_name='user')
    with pytest.raises(ValueError, match=r"collab_learner needs n_factors"):
        collab_learner(toy_data())


@pytest.fixture(scope='module')
def trained():
    torch.manual_seed(0)
    data = toy_data()
    learn = collab_learner(data, n_factors=4, y_range=(0.5, 5.5), wd=1e-3)
    learn.fit_one_cycle(8, 3e-2)
    return learn


def test_collab_learner_beats_the_mean(trained):
    train_y = torch.as_tensor(trained.data.train_ds.y.items)
    valid_y = torch.as_tensor(trained.data.valid_ds.y.items)
    mean_mse = float(((valid_y - train_y.mean()) ** 2).mean())
    assert isinstance(trained, CollabLearner)
    assert trained.validate()[0] < 0.8 * mean_mse


def test_bias_and_weight_are_the_model_parameters(trained):
    x = trained.data.train_ds.x
    items = [x.classes['movieId'][3], x.classes['movieId'][1]]
    assert trained.get_idx(items).tolist() == [3, 1]
    assert torch.equal(trained.bias(items), trained.model.i_bias.weight[[3, 1], 0])
    users = [x.classes['userId'][2]]
    assert torch.equal(trained.weight(users, is_item=False), trained.model.u_weight.weight[[2]])
    assert torch.equal(trained.bias(np.array(items)), trained.bias(items))  # numpy ids work like Python ones


def test_get_idx_unknown_name_is_a_clear_error(trained):
    with pytest.raises(ValueError, match=r"1 value\(s\) of 'userId' were not in the training data: \['u3x'\]\. "
                                         r"Did you mean 'u3'"):
        trained.get_idx(['u3', 'u3x'], is_item=False)


def test_predict_pair_series_and_unknown_user(trained):
    x = trained.data.train_ds.x
    user, item = x.classes['userId'][5], x.classes['movieId'][7]
    pred, value, raw = trained.predict((user, item))
    assert float(pred.obj) == pytest.approx(float(value))
    expected = trained.model.eval()(torch.tensor([5]), torch.tensor([7])).detach()
    assert float(value) == pytest.approx(float(expected), abs=1e-5)
    series = pd.Series({'userId': user, 'movieId': item, 'rating': 3.0})
    assert float(trained.predict(series)[1]) == pytest.approx(float(value), abs=1e-6)
    with pytest.warns(UserWarning, match=r"value\(s\) of the column 'userId' were not seen in training \(e\.g\. 'stranger'\)"):
        unknown = trained.predict(('stranger', item))
    na_user = trained.model(torch.tensor([0]), torch.tensor([7])).detach()   # the '#na#' user embedding
    assert float(unknown[1]) == pytest.approx(float(na_user), abs=1e-5)


def test_get_preds_on_the_test_set(trained):
    data = trained.data
    data.add_test(toy_ratings().iloc[:12])
    preds, _ = trained.get_preds(DatasetType.Test)
    assert preds.shape == (12,) and ((preds > 0.5) & (preds < 5.5)).all()


def test_neural_collab_learner_trains():
    torch.manual_seed(0)
    learn = collab_learner(toy_data(), use_nn=True, layers=[16], emb_szs={'userId': 5}, y_range=(0.5, 5.5))
    assert learn.model.embeds[0].embedding_dim == 5
    before = learn.validate()[0]
    learn.fit_one_cycle(3, 1e-2)
    assert learn.validate()[0] < before
    assert learn.weight([learn.data.train_ds.x.classes['movieId'][1]]).shape == (1, learn.model.embeds[1].embedding_dim)
    with pytest.raises(TypeError, match="bias needs an EmbeddingDotBias model"):
        learn.bias([learn.data.train_ds.x.classes['movieId'][1]])


def test_gathered_batches_equal_per_row_collation():
    from fastlib.torch_core import data_collate
    data = toy_data()
    ds = data.valid_ds
    xb, yb = next(iter(data.valid_dl))
    per_row = data_collate([ds[i] for i in range(32)])
    assert torch.equal(xb[0], per_row[0][0]) and torch.equal(xb[1], per_row[0][1]) and torch.equal(yb, per_row[1])
