"""Image data: factories, item types, normalization, bad input, export state, downloads; real data sets."""
import http.server
import json
import subprocess
import sys
import threading
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch

from fastlib.serialization import safe_load
from fastlib.vision import *
from fastlib.vision.transform import ImageBatchTransform

KW = dict(num_workers=0, device='cpu')


def _write(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(arr, mode=mode).save(path)
    return path


def _folder(root, n=4, classes=('a', 'b'), size=(12, 14)):
    "root/{train,valid}/<class>/i.png; class 'a' images dark, 'b' bright."
    rng = np.random.default_rng(0)
    for split in ('train', 'valid'):
        for k, c in enumerate(classes):
            for i in range(n):
                base = 40 + 150 * k
                _write(root / split / c / f'{c}{i}.png', rng.integers(base, base + 60, (*size, 3), dtype=np.uint8))
    return root


def test_from_folder_batches_and_classes(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=4, **KW)
    assert data.classes == ['a', 'b'] and data.c == 2
    assert len(data.train_ds) == 8 and len(data.valid_ds) == 8
    raw = next(iter(data.train_dl.dl))[0]
    assert raw.dtype == torch.uint8 and raw.shape == (4, 3, 8, 8)    # what the workers ship
    x, y = next(iter(data.valid_dl))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 8) and 0 <= x.min() and x.max() <= 1
    # valid images are dark for 'a' and bright for 'b': labels come from the folders
    means = x.mean((1, 2, 3))
    assert ((means > 0.5) == (y == 1)).all()


def test_normalize_with_stats_and_from_batch(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, size=8, bs=8, **KW)
    raw, _ = data.one_batch(DatasetType.Valid)
    data.normalize(imagenet_stats)
    x, _ = data.one_batch(DatasetType.Valid, denorm=False)
    mean, std = torch.tensor(imagenet_stats[0]), torch.tensor(imagenet_stats[1])
    assert torch.allclose(x, (raw - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    assert torch.allclose(data.denorm(x), raw, atol=1e-5)
    assert torch.allclose(data.one_batch(DatasetType.Valid)[0], raw, atol=1e-5)   # denorm by default
    with pytest.raises(ValueError, match='normalize once'):
        data.normalize()
    kept = raw.clone()
    norm, _ = normalize_funcs(*imagenet_stats)   # not in place unless asked: the caller's tensor is left alone
    assert torch.allclose(norm((raw, None))[0], x, atol=1e-5) and torch.equal(raw, kept)
    data2 = ImageDataBunch.from_folder(path, size=8, bs=8, **KW).normalize()
    m, s = data2.stats
    batch = data2.one_batch(denorm=False)[0]
    assert m.shape == (3,) and torch.allclose(channel_view(batch).mean(1), torch.zeros(3), atol=1e-4)


def test_grayscale_rgba_mix_is_rgb(tmp_path):
    _write(tmp_path / 'train' / 'a' / 'g.png', np.full((6, 6), 90, dtype=np.uint8))
    _write(tmp_path / 'train' / 'a' / 'r.png', np.full((6, 6, 4), 200, dtype=np.uint8), 'RGBA')
    _write(tmp_path / 'valid' / 'a' / 'c.png', np.full((6, 6, 3), 30, dtype=np.uint8))
    data = ImageDataBunch.from_folder(tmp_path, size=6, bs=2, **KW)
    x, _ = next(iter(data.train_dl))
    assert x.shape == (2, 3, 6, 6)


def test_corrupt_file_is_named_and_verify_images_removes_it(tmp_path):
    path = _folder(tmp_path, n=2)
    bad = path / 'train' / 'a' / 'bad.png'
    bad.write_bytes(b'garbage')
    (path / 'train' / 'a' / 'notes.txt').write_text('not an image')
    with pytest.raises(Exception, match='bad.png'):
        ImageDataBunch.from_folder(path, size=8, bs=8, **KW)
    with pytest.warns(UserWarning, match='bad.png'):
        bad_files = verify_images(path / 'train' / 'a', delete=True, max_workers=1)
    assert bad_files == [bad] and not bad.exists()
    data = ImageDataBunch.from_folder(path, size=8, bs=2, **KW)
    assert len(data.train_ds) == 4    # the .txt file is not an image file


def test_verify_images_resizes(tmp_path):
    _write(tmp_path / 'big.png', np.zeros((40, 20, 3), dtype=np.uint8))
    verify_images(tmp_path, max_size=10, dest='small', max_workers=1)
    assert PIL.Image.open(tmp_path / 'small' / 'big.png').size == (5, 10)


def test_empty_class_folder_warns(tmp_path):
    path = _folder(tmp_path, n=2)
    (path / 'train' / 'empty').mkdir()
    with pytest.warns(UserWarning, match='empty holds no image'):
        data = ImageDataBunch.from_folder(path, size=8, bs=2, **KW)
    assert data.classes == ['a', 'b']


def test_csv_with_missing_file_is_named(tmp_path):
    _folder(tmp_path, n=2)
    df = pd.DataFrame({'name': ['train/a/a0.png', 'train/a/missing.png'], 'label': ['a', 'b']})
    df.to_csv(tmp_path / 'labels.csv', index=False)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        ImageDataBunch.from_csv(tmp_path, size=8, **KW)


def test_from_df_multilabel_and_regression(tmp_path):
    _folder(tmp_path, n=4)
    names = [f'train/{c}/{c}{i}.png' for c in 'ab' for i in range(4)]
    df = pd.DataFrame({'name': names, 'tags': ['x y', 'x', 'y', 'x y'] * 2})
    data = ImageDataBunch.from_df(tmp_path, df, label_delim=' ', valid_pct=0.25, seed=0, size=8, bs=2, **KW)
    assert data.classes == ['x', 'y']
    _, y = data.one_batch()
    assert y.shape == (2, 2) and y.dtype == torch.float32
    df['score'] = np.arange(8, dtype=np.float32)
    src = (ImageList.from_df(df, tmp_path, cols='name').split_by_rand_pct(0.25, seed=0)
           .label_from_df('score', label_cls=FloatList))
    data = src.transform(size=8).databunch(bs=2, **KW)
    x, y = data.one_batch()
    assert y.dtype == torch.float32 and data.c == 1


def test_name_factories(tmp_path):
    path = _folder(tmp_path, n=3)
    fnames = get_image_files(path / 'train' / 'a') + get_image_files(path / 'train' / 'b')
    d1 = ImageDataBunch.from_name_re(path, fnames, r'/([ab])\d+\.png$', valid_pct=0.3, seed=1, size=8, bs=2, **KW)
    d2 = ImageDataBunch.from_name_func(path, fnames, lambda o: o.name[0], valid_pct=0.3, seed=1, size=8, bs=2, **KW)
    d3 = ImageDataBunch.from_lists(path, fnames, [o.name[0] for o in fnames], valid_pct=0.3, seed=1, size=8, bs=2,
                                   **KW)
    for d in (d1, d2, d3):
        assert d.classes == ['a', 'b']
        assert [str(d.train_ds.y[i]) for i in range(len(d.train_ds))] == \
               [str(p.name[0]) for p in d.train_ds.x.items]


def _seg_data(tmp_path, classes, tfm_y=True, n=4, size=16):
    "Images whose bright pixels are exactly the pixels of class 1 in their mask."
    rng = np.random.default_rng(0)
    for i in range(n):
        m = (rng.random((16, 16)) > 0.7).astype(np.uint8)
        _write(tmp_path / 'images' / f'{i}.png', np.repeat(m[..., None] * 255, 3, 2))
        _write(tmp_path / 'labels' / f'{i}_P.png', m)
    src = (SegmentationItemList.from_folder(tmp_path / 'images').split_by_idx([0])
           .label_from_func(lambda o: tmp_path / 'labels' / f'{o.stem}_P.png', classes=classes))
    return src.transform(get_transforms(max_lighting=0.), size=size, tfm_y=tfm_y, mode='nearest').databunch(bs=3, **KW)


def test_segmentation_masks_follow_images_on_the_batch(tmp_path):
    data = _seg_data(tmp_path, ['void', 'thing'])
    torch.manual_seed(0)
    for _ in range(3):
        x, y = next(iter(data.train_dl))
        assert y.dtype == torch.long and y.shape == (3, 1, 16, 16)
        assert torch.equal((x[:, :1] > 0.5).long(), y)
    assert data.c == 2 and data.train_ds.y.loss_func is not None
    data.show_batch(rows=2)


def test_masks_follow_images_upsampled_on_the_batch(tmp_path):
    data = _seg_data(tmp_path, ['void', 'thing'], size=32)    # 16 px sources: images upsampled in the batch
    assert next(iter(data.train_dl.dl))[0].shape == (3, 3, 16, 16)
    torch.manual_seed(0)
    for _ in range(3):
        x, y = next(iter(data.train_dl))
        assert x.shape == (3, 3, 32, 32) and y.shape == (3, 1, 32, 32)
        # nearest sampling of the 16 px image and of the 32 px mask agree but where a sample falls on a pixel edge
        assert ((x[:, :1] > 0.5).long() != y).float().mean() < 0.005


def test_upsampling_is_left_to_the_batch(tmp_path):
    path = _folder(tmp_path, size=(12, 12))
    data = ImageDataBunch.from_folder(path, ds_tfms=([flip_lr(p=1.)], []), size=24, bs=4, **KW)
    x0 = data.valid_ds[0][0]
    assert x0.shape == (3, 24, 24) and x0.px.shape == (3, 24, 24)   # an item shows the size it was given
    assert next(iter(data.valid_dl.dl))[0].shape == (4, 3, 12, 12)  # a batch carries the sources
    src = torch.stack([data.valid_ds.x.get(i).px for i in range(4)])
    up = F.interpolate(src, size=(24, 24), mode='bilinear', align_corners=False)
    x, _ = next(iter(data.valid_dl))
    assert x.shape == (4, 3, 24, 24) and torch.allclose(x, up, atol=1e-6)
    per_item = torch.stack([data.valid_ds[i][0].px for i in range(4)])   # upsampled one by one, in 8 bits
    assert (x - per_item).abs().max() <= 1 / 255 + 1e-6
    data.train_dl = data.train_dl.new(shuffle=False)
    xt, _ = next(iter(data.train_dl))   # the flip samples the sources directly: the flipped upsampled images
    srct = torch.stack([data.train_ds.x.get(i).px for i in range(4)])
    assert torch.allclose(xt, F.interpolate(srct, size=(24, 24), mode='bilinear', align_corners=False).flip(-1),
                          atol=1e-5)


def test_a_batch_of_mixed_sizes_is_upsampled_per_item(tmp_path):
    path = _folder(tmp_path, size=(12, 12))
    _write(path / 'valid' / 'a' / 'odd.png', np.full((16, 16, 3), 99, dtype=np.uint8))
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=24, bs=9, **KW)
    raw = next(iter(data.valid_dl.dl))[0]
    assert raw.shape == (9, 3, 24, 24) and raw.dtype == torch.uint8
    x, _ = next(iter(data.valid_dl))
    assert torch.equal(x, torch.stack([data.valid_ds[i][0].px for i in range(9)]))
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=9, **KW)   # downsizing: per item
    assert next(iter(data.valid_dl.dl))[0].shape == (9, 3, 8, 8)


def test_mask_code_beyond_classes_is_named(tmp_path):
    with pytest.raises(Exception, match=r'_P\.png holds the code 1, but there are only 1 classes'):
        _seg_data(tmp_path, ['void'])


def test_points_follow_images_on_the_batch(tmp_path):
    rng = np.random.default_rng(1)
    pts = {}
    for i in range(6):
        r, c = rng.integers(6, 14, 2)
        a = np.zeros((20, 20, 3), dtype=np.uint8)
        a[r, c] = 255
        _write(tmp_path / f'{i}.png', a)
        pts[f'{i}.png'] = torch.tensor([[r + 0.5, c + 0.5]])
    src = PointsItemList.from_folder(tmp_path).split_by_idx([0]).label_from_func(lambda o: pts[o.name])
    tfms = [flip_lr(p=0.5), rotate(degrees=(-90, 90))]
    data = src.transform((tfms, []), size=20, tfm_y=True, mode='nearest', padding_mode='zeros').databunch(bs=5, **KW)
    torch.manual_seed(0)
    x, y = next(iter(data.train_dl))
    assert y.shape == (5, 1, 2)
    for xi, yi in zip(x, y):
        if xi.max() < 1:
            continue
        r, c = ((yi[0] + 1) * 10).floor().long().tolist()
        assert xi[0, r, c] == 1
    data.show_batch(rows=2)


def test_bb_pad_collate_pads():
    img = Image(torch.zeros(3, 4, 4, dtype=torch.uint8))
    b1 = ImageBBox.create(4, 4, [[0, 0, 2, 2]], labels=[1], classes=['bg', 'a', 'b'])
    b2 = ImageBBox.create(4, 4, [[0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 4, 4]], labels=[2, 1, 1], classes=['bg', 'a', 'b'])
    x, (boxes, labels) = bb_pad_collate([(img, b1), (img, b2)])
    assert x.shape == (2, 3, 4, 4) and boxes.shape == (2, 3, 4)
    assert labels.tolist() == [[0, 0, 1], [2, 1, 1]]
    assert boxes[0, :2].abs().sum() == 0 and torch.allclose(boxes[0, 2], torch.tensor([-1., -1., 0., 0.]))


def test_image_to_image_and_show(tmp_path):
    _folder(tmp_path, n=2)
    src = ImageImageList.from_folder(tmp_path / 'train').split_by_idx([0]).label_from_func(lambda o: o)
    data = src.transform(get_transforms(max_lighting=0.), size=8, tfm_y=True).databunch(bs=3, **KW)
    x, y = next(iter(data.train_dl))
    assert torch.allclose(x, y, atol=1e-5)    # the same file, the same geometry
    data.show_batch(rows=2)


def test_export_state_is_safe_and_rebuilds(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=4, **KW).normalize(cifar_stats)
    torch.save(data.export_state(), tmp_path / 'state.pkl')
    state = safe_load(tmp_path / 'state.pkl')      # weights_only: no code from the file
    empty = ImageDataBunch.load_empty(path, state, device='cpu')
    fn = path / 'valid' / 'b' / 'b0.png'
    xb, _ = empty.one_item(open_image(fn))
    xv, _ = data.one_item(open_image(fn))
    assert xb.shape == (1, 3, 8, 8) and torch.allclose(xb, xv)
    assert any(isinstance(t, ImageBatchTransform) for t in empty.valid_dl.tfms)
    assert empty.classes == ['a', 'b']


def test_add_test_items(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, size=8, bs=4, **KW)
    data.add_test(get_image_files(path / 'valid' / 'a'))
    x, _ = next(iter(data.test_dl))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_images_from_local_server(tmp_path):
    src = tmp_path / 'srv'
    _write(src / 'one.png', np.zeros((3, 3, 3), dtype=np.uint8))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(src)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f'http://127.0.0.1:{server.server_address[1]}'
        (tmp_path / 'urls.txt').write_text(f'{base}/one.png\n{base}/missing.png\n')
        with pytest.warns(UserWarning, match='missing.png'):
            failed = download_images(tmp_path / 'urls.txt', tmp_path / 'dl', max_workers=2)
    finally:
        server.shutdown()
    assert failed == [f'{base}/missing.png']
    assert [p.name for p in (tmp_path / 'dl').iterdir()] == ['00000000.png']
    assert open_image(tmp_path / 'dl' / '00000000.png').shape == (3, 3, 3)


def test_show_xys_and_xyzs(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, size=8, bs=4, **KW)
    fig = data.show_batch(rows=2)
    assert len(fig.axes) == 4 and fig.axes[0].get_title() in ('a', 'b')
    x, y = data.one_batch()
    xs = [data.train_ds.x.reconstruct(o) for o in x]
    ys = [data.train_ds.y.reconstruct(o) for o in y]
    fig = data.train_ds.x.show_xyzs(xs, ys, ys)
    assert fig.axes[0].get_title().count('/') == 1


def test_mnist_tiny_from_folder(shared_data):
    path = untar_data(URLs.MNIST_TINY)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(do_flip=False), size=28, bs=16, **KW).normalize()
    assert data.classes == ['3', '7'] and len(data.train_ds) == 709 and len(data.valid_ds) == 699
    x, y = next(iter(data.train_dl))
    assert x.shape == (16, 3, 28, 28)


def test_camvid_tiny_segmentation(shared_data):
    path = untar_data(URLs.CAMVID_TINY)
    codes = np.loadtxt(path / 'codes.txt', dtype=str)
    src = (SegmentationItemList.from_folder(path / 'images').split_by_rand_pct(0.2, seed=0)
           .label_from_func(lambda o: path / 'labels' / f'{o.stem}_P{o.suffix}', classes=codes))
    data = src.transform(get_transforms(), size=(48, 64), tfm_y=True).databunch(bs=4, **KW).normalize(imagenet_stats)
    x, y = next(iter(data.train_dl))
    assert x.shape == (4, 3, 48, 64) and y.shape == (4, 1, 48, 64) and int(y.max()) < 32 and data.c == 32


def test_coco_tiny_boxes(shared_data):
    path = untar_data(URLs.COCO_TINY)
    images, lbl_bbox = get_annotations(path / 'train.json')
    img2bbox = dict(zip(images, lbl_bbox))
    src = (ObjectItemList.from_folder(path).split_by_rand_pct(seed=0)
           .label_from_func(lambda o: img2bbox[o.name]))
    data = src.transform(get_transforms(), tfm_y=True, size=64).databunch(bs=4, **KW)
    assert data.classes[0] == 'background' and len(data.classes) == 7
    x, (boxes, labels) = next(iter(data.train_dl))
    assert x.shape == (4, 3, 64, 64) and boxes.shape[:2] == labels.shape and boxes.abs().max() <= 1
    data.show_batch(rows=2)


def test_cpu_workers_augment_and_send_uint8(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=4, num_workers=1, device='cpu',
                                      persistent_workers=True)
    raw = next(iter(data.valid_dl.dl))[0]
    assert raw.dtype == torch.uint8 and raw.shape == (4, 3, 8, 8)      # collated and augmented in the worker
    plain = torch.stack([data.valid_ds[i][0].px for i in range(4)])   # valid: a centre crop, no augmentation
    assert torch.allclose(raw.float() / 255, plain, atol=1e-6)
    threads = torch.get_num_threads()
    x, y = next(iter(data.valid_dl))                                   # made float in this process
    assert x.dtype == torch.float32 and torch.allclose(x, plain, atol=1e-6) and y.dtype == torch.long
    data.normalize(imagenet_stats)                                     # ... and normalized here too
    assert next(iter(data.valid_dl.dl))[0].dtype == torch.uint8
    mean, std = torch.tensor(imagenet_stats[0])[:, None, None], torch.tensor(imagenet_stats[1])[:, None, None]
    x, _ = next(iter(data.valid_dl))
    assert torch.allclose(x, (plain - mean) / std, atol=1e-5)
    assert torch.get_num_threads() == threads                          # the one-thread conversion gives them back
    xt, _ = next(iter(data.train_dl))                                  # augmented batches: the same way
    assert xt.dtype == torch.float32 and xt.shape == (4, 3, 8, 8)
    x2, _ = next(iter(data.valid_dl.new(num_workers=0)))               # a derived loader does it all itself
    assert torch.allclose(x, x2, atol=1e-6)
    data.valid_dl.add_tfm(lambda b: (b[0] * 0, b[1]))                  # a transform added later runs here
    assert next(iter(data.valid_dl))[0].abs().max() == 0


def test_cpu_workers_with_other_batch_transforms_run_them_all_there(tmp_path):
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=4, num_workers=1, device='cpu',
                                      dl_tfms=[_double])
    raw = next(iter(data.valid_dl.dl))[0]
    plain = torch.stack([data.valid_ds[i][0].px for i in range(4)])
    assert raw.dtype == torch.float32 and torch.allclose(raw, plain * 2, atol=1e-6)   # not rounded to 8 bits


def _double(b):
    return b[0] * 2, b[1]


def test_float_images_are_not_rounded_to_8_bits():
    ds = SimpleNamespace(tfms=[], tfmargs={'on_batch': True})
    x = torch.rand(2, 3, 4, 4) * 5 - 1                                  # a dataset of float images, any range
    out, _ = ImageBatchTransform(ds, to_uint8=True)((x, torch.zeros(2)))
    assert torch.equal(out, x)
    u8 = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    out, _ = ImageBatchTransform(ds, to_uint8=True)((u8, torch.zeros(2)))
    assert torch.equal(out, u8)                                        # 8-bit in, no change: 8-bit out, exactly


@pytest.mark.slow
def test_export_load_predict_in_fresh_process(tmp_path):
    from torch import nn
    from fastlib.basic_train import Learner
    path = _folder(tmp_path)
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=8, bs=4, **KW).normalize(imagenet_stats)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    learn = Learner(data, model)
    fn = path / 'valid' / 'b' / 'b1.png'
    expected = learn.predict(open_image(fn))[2]
    learn.export()
    code = (f"import torch; from fastlib.vision import *; from fastlib.basic_train import load_learner\n"
            f"learn = load_learner(r'{path}'); c, i, p = learn.predict(open_image(r'{fn}'))\n"
            f"print(str(c), p.tolist())")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    label, probs = out.stdout.strip().split(' ', 1)
    assert label in ('a', 'b')
    assert torch.allclose(torch.tensor(json.loads(probs)), expected, atol=1e-5)


def test_from_folder_random_split(tmp_path):
    for k, c in enumerate('ab'):
        for i in range(5):
            _write(tmp_path / c / f'{i}.png', np.full((6, 6, 3), 50 + 100 * k, dtype=np.uint8))
    data = ImageDataBunch.from_folder(tmp_path, valid_pct=0.2, seed=0, size=6, bs=2, **KW)
    assert data.classes == ['a', 'b'] and len(data.train_ds) == 8 and len(data.valid_ds) == 2
    # v1's default valid_pct=0.2 splits at random when there is no `valid` folder ...
    data = ImageDataBunch.from_folder(tmp_path, seed=0, size=6, bs=2, **KW)
    assert len(data.train_ds) == 8 and len(data.valid_ds) == 2


def test_from_folder_default_uses_the_valid_folder_unless_valid_pct_is_given(tmp_path):
    path = _folder(tmp_path)   # 8 train and 8 valid images
    data = ImageDataBunch.from_folder(path, size=8, bs=4, **KW)
    assert len(data.train_ds) == 8 and len(data.valid_ds) == 8
    assert all('valid' in Path(f).parts for f in data.valid_ds.x.items)
    data = ImageDataBunch.from_folder(path, valid_pct=0.25, seed=1, size=8, bs=4, **KW)   # asked for: random
    assert len(data.train_ds) == 12 and len(data.valid_ds) == 4
