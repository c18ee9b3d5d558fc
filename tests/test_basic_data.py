"""DataBunch and DeviceDataLoader: creation, checks with clear errors, batches, transforms, save/load."""
import pytest
import torch

from fastlib.basic_data import DataBunch, DatasetType, DeviceDataLoader, load_data
from fastlib.layers import FlattenedLoss
from fastlib.serialization import UnsafeFileError
from fastlib.testing import FakeDataset, fake_data, fake_datasets


def test_create_gives_device_loaders_and_batches():
    data = fake_data(batch_size=32, train_length=100, valid_length=50)
    assert isinstance(data.train_dl, DeviceDataLoader)
    x, y = data.one_batch()
    assert x.shape == (32, 8) and y.shape == (32,)
    assert len(data.train_dl) == 100 // 32  # the training loader drops its last incomplete batch
    assert len(data.valid_dl) == 2          # validation keeps it
    assert data.c == 3 and data.classes == ['class_0', 'class_1', 'class_2']
    assert data.dl(DatasetType.Fix).dataset is data.train_ds


def test_training_set_smaller_than_bs_keeps_its_one_batch():
    data = fake_data(batch_size=64, train_length=10, valid_length=10)
    assert len(data.train_dl) == 1
    assert data.one_batch()[0].shape[0] == 10


def test_empty_training_set_error():
    train, valid = fake_datasets(train_length=16, valid_length=16)
    empty = FakeDataset(train.x[:0], train.y[:0], train.classes)
    with pytest.raises(ValueError, match=r'training set is empty \(0 items\)'):
        DataBunch.create(empty, valid, num_workers=0)


def test_empty_validation_set_warns_and_skips_validation():
    train, valid = fake_datasets(train_length=16, valid_length=16)
    empty = FakeDataset(valid.x[:0], valid.y[:0], valid.classes)
    with pytest.warns(UserWarning, match='validation set is empty'):
        data = DataBunch.create(train, empty, num_workers=0, bs=8)
    assert data.empty_val


def test_mismatched_classes_error():
    train, valid = fake_datasets()
    valid.classes = ['class_2', 'class_1', 'class_0']
    with pytest.raises(ValueError, match='different classes'):
        DataBunch.create(train, valid, num_workers=0)


def test_mismatched_feature_sizes_error():
    train, _ = fake_datasets(n_in=8)
    _, valid = fake_datasets(n_in=5)
    with pytest.raises(ValueError, match=r'shaped \(8,\) in training and \(5,\) in validation'):
        DataBunch.create(train, valid, num_workers=0)


def test_a_padding_collate_may_give_batches_of_different_lengths():
    train, _ = fake_datasets(n_in=8)
    _, valid = fake_datasets(n_in=5)

    def pad_collate(samples):   # pads each batch to its own longest item, as text and box collates do
        xs, ys = zip(*samples)
        n = max(len(x) for x in xs)
        return torch.stack([torch.cat([x, x.new_zeros(n - len(x))]) for x in xs]), torch.stack(ys)
    data = DataBunch.create(train, valid, num_workers=0, collate_fn=pad_collate)
    assert data.one_batch(DatasetType.Valid)[0].shape[1] == 5
    valid = FakeDataset(valid.x, valid.y.float(), valid.classes)   # the other checks still run
    with pytest.raises(ValueError, match='different kinds of values'):
        DataBunch.create(train, valid, num_workers=0, collate_fn=pad_collate)


def test_mismatched_target_kinds_error():
    train, valid = fake_datasets()
    valid = FakeDataset(valid.x, valid.y.float(), valid.classes)
    with pytest.raises(ValueError, match='different kinds of values'):
        DataBunch.create(train, valid, num_workers=0)


class _Ragged(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(i + 1), 0


def test_items_that_cannot_be_batched_error():
    with pytest.raises(RuntimeError, match=r'cannot be put in one batch.*resize transform.*collate_fn that pads'):
        DataBunch.create(_Ragged(), _Ragged(), bs=4, num_workers=0)


def test_no_test_set_error():
    data = fake_data()
    with pytest.raises(ValueError, match='no Test set.*add_test'):
        data.dl(DatasetType.Test)


def test_add_test_dataset():
    data = fake_data()
    _, test = fake_datasets(valid_length=40, seed=3)
    data.add_test(test)
    assert len(data.dl(DatasetType.Test).dataset) == 40


def test_add_tfm_is_applied_to_batches():
    data = fake_data()

    def double(b):
        x, y = b
        return x * 2, y

    raw = data.valid_ds.x[:data.valid_dl.batch_size]
    data.add_tfm(double)
    x, _ = data.one_batch(DatasetType.Valid)
    torch.testing.assert_close(x, raw * 2)
    data.remove_tfm(double)
    torch.testing.assert_close(data.one_batch(DatasetType.Valid)[0], raw)


def test_one_item_makes_a_batch_of_one():
    data = fake_data()
    x, y = data.one_item(data.valid_ds[3][0])
    assert x.shape == (1, 8)
    torch.testing.assert_close(x[0], data.valid_ds.x[3])


def test_batch_size_setter_rebuilds_loaders():
    data = fake_data(batch_size=32, train_length=128)
    data.batch_size = 16
    assert data.train_dl.batch_size == 16 and len(data.train_dl) == 8
    assert data.one_batch()[0].shape[0] == 16


def test_loss_func_follows_the_targets():
    assert 'CrossEntropyLoss' in repr(fake_data().loss_func)
    reg = fake_data(n_classes=None)
    assert isinstance(reg.loss_func, FlattenedLoss) and 'MSELoss' in repr(reg.loss_func)


def test_save_and_load_data_round_trip(tmp_path):
    data = fake_data(path=tmp_path)
    data.save('data.pkl')
    loaded = load_data(tmp_path, 'data.pkl', bs=16, num_workers=0, device='cpu')
    assert loaded.batch_size == 16
    torch.testing.assert_close(loaded.valid_ds.x, data.valid_ds.x)
    assert loaded.classes == data.classes


class _MyDataset(torch.utils.data.Dataset):
    "A dataset class fastlib does not know: loading it needs the caller's say-so."

    def __init__(self):
        self.x = torch.zeros(8, 2)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.x[i], 0


def test_load_data_refuses_unknown_classes_unless_trusted(tmp_path):
    data = DataBunch.create(_MyDataset(), _MyDataset(), path=tmp_path, bs=4, num_workers=0, device='cpu')
    data.save()
    with pytest.raises(UnsafeFileError, match=r'_MyDataset.*trusted=True'):
        load_data(tmp_path, num_workers=0)
    assert len(load_data(tmp_path, num_workers=0, trusted=True).train_ds) == 8


def test_tfms_run_once_whether_in_the_collate_function_or_here():
    data = fake_data(batch_size=8, train_length=32, valid_length=16)
    calls = []

    def double(b):
        calls.append(1)
        return b[0] * 2, b[1]
    dl = data.valid_dl
    dl.add_tfm(double)
    want = [x for x, _ in dl]
    assert len(calls) == 2
    dl.run_tfms_in_collate()          # num_workers=0 here: the collate function runs in this process
    got = [x for x, _ in dl]
    assert len(calls) == 4 and all(torch.equal(a, b) for a, b in zip(want, got))
    dl.add_tfm(lambda b: (b[0] + 1, b[1]))   # added afterwards: applied here, after the collate ones
    assert all(torch.equal(a + 1, x) for a, (x, _) in zip(want, dl))
    assert all(torch.equal(a + 1, x) for a, (x, _) in zip(want, dl.new()))   # a copy applies them all itself
