"""Image items and I/O: opening (modes, bad files), masks, RLE, points and boxes, showing."""
import numpy as np
import PIL.Image
import pytest
import torch

from fastlib.vision import *


def _save(path, arr, mode=None):
    PIL.Image.fromarray(arr, mode=mode).save(path)
    return path


def test_open_image_rgb_and_modes(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    fn = _save(tmp_path / 'a.png', a)
    img = open_image(fn)
    assert img.shape == (3, 5, 7) and img.size == (5, 7)
    assert torch.allclose(img.px, torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    assert torch.allclose(open_image(fn, div=False).px, torch.from_numpy(a).permute(2, 0, 1).float())
    gray = open_image(fn, convert_mode='L')
    assert gray.shape == (1, 5, 7)
    seen = []
    open_image(fn, after_open=lambda im: seen.append(im.size) or im.rotate(90, expand=True))
    assert seen == [(7, 5)]


def test_grayscale_and_rgba_open_as_rgb(tmp_path):
    g = np.full((4, 4), 100, dtype=np.uint8)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0] = [50, 60, 70, 0]   # fully transparent pixel: black whatever colour hides under it
    gi = open_image(_save(tmp_path / 'g.png', g))
    ri = open_image(_save(tmp_path / 'r.png', rgba, 'RGBA'))
    assert gi.shape == ri.shape == (3, 4, 4)
    assert torch.allclose(gi.px, torch.full((3, 4, 4), 100 / 255))
    assert ri.px[:, 0, 0].tolist() == [0, 0, 0]
    assert ri.px[:, 1, 1].tolist() == pytest.approx([200 / 255, 0, 0])


def test_corrupt_and_missing_files_are_named(tmp_path):
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not an image at all')
    with pytest.raises(OSError, match='broken.png'):
        open_image(bad)
    with pytest.raises(FileNotFoundError, match='nothere.png'):
        open_image(tmp_path / 'nothere.png')


def test_open_mask_keeps_codes(tmp_path):
    m = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
    mask = open_mask(_save(tmp_path / 'm.png', m))
    assert isinstance(mask, ImageSegment)
    assert mask.data.dtype == torch.long and mask.data.tolist() == [m.tolist()]
    assert open_mask(tmp_path / 'm.png', div=True).px.max().item() == pytest.approx(5 / 255)


def test_rle_round_trip_and_format():
    m = np.zeros((3, 4), dtype=np.uint8)
    m[0, 1:3] = 1
    m[2, 3] = 1
    assert rle_encode(m) == '2 2 12 1'
    assert np.array_equal(rle_decode('2 2 12 1', (3, 4)), m)
    seg = open_mask_rle('2 2 12 1', (3, 4))
    assert seg.data[0].numpy().tolist() == m.tolist()


def test_pil2tensor_image2np():
    a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    t = pil2tensor(PIL.Image.fromarray(a), np.float32)
    assert t.shape == (3, 2, 4) and t[1, 1, 2] == a[1, 2, 1]
    assert np.array_equal(image2np(t), a.astype(np.float32))
    assert image2np(t[:1]).shape == (2, 4)


def test_points_scaling_and_boxes():
    pts = ImagePoints(FlowField((10, 20), torch.tensor([[0., 0.], [5., 10.], [10., 20.]])))
    assert torch.allclose(pts.data, torch.tensor([[-1., -1.], [0., 0.], [1., 1.]]))
    bb = ImageBBox.create(10, 20, [[0, 0, 5, 10], [2, 4, 8, 12]], labels=[1, 2], classes=['bg', 'a', 'b'])
    boxes, labels = bb.data
    assert torch.allclose(boxes[0], torch.tensor([-1., -1., 0., 0.]))
    assert torch.allclose(boxes[1], torch.tensor([2 / 5 - 1, 4 / 10 - 1, 8 / 5 - 1, 12 / 10 - 1]))
    assert labels.tolist() == [1, 2]
    assert bb2hw([1, 2, 5, 7]).tolist() == [2, 1, 5, 4]
    assert tis2hw(5) == (5, 5) and tis2hw((3, 4, 6)) == (4, 6)


def test_boxes_flip_and_leave_the_image():
    bb = ImageBBox.create(10, 10, [[0, 0, 5, 2], [0, 8, 2, 10]], labels=[1, 2], classes=['bg', 'a', 'b'])
    flipped = bb.apply_tfms([flip_lr()])
    boxes, _ = flipped.data
    assert torch.allclose(boxes[0], torch.tensor([-1., 0.6, 0., 1.]))
    gone = bb.apply_tfms([zoom(scale=2., row_pct=1., col_pct=0.)])   # keep the bottom-left quarter
    boxes, labels = gone.data
    assert labels.tolist() == [] and boxes.shape == (0, 4)


def test_image_save_and_show(tmp_path):
    img = Image(torch.rand(3, 6, 6))
    img.save(tmp_path / 'x.png')
    assert torch.allclose(open_image(tmp_path / 'x.png').px, img.px, atol=1 / 255)
    ax = img.show(title='t')
    assert ax.get_title() == 't'
    seg = ImageSegment(torch.randint(0, 3, (1, 6, 6)))
    img.show(y=seg)
    fig = show_all([img, img, img], r=2)
    assert len(fig.axes) == 4
    fig = plot_multi(lambda i, j, ax: img.show(ax=ax), 2, 2)
    assert len(fig.axes) == 4


def test_segment_resize_is_nearest():
    seg = ImageSegment(torch.tensor([[[0, 1], [2, 3]]], dtype=torch.uint8))
    out = seg.apply_tfms([], size=(4, 4))
    assert out.data.unique().tolist() == [0, 1, 2, 3]
    assert out.data[0, :2, :2].unique().tolist() == [0]


def test_flow_and_affine_mat_resample_at_once():
    torch.manual_seed(0)
    img = Image(torch.rand(3, 6, 8))
    assert torch.equal(img.affine_mat, torch.eye(3))
    ff = img.flow
    assert ff.size == (6, 8) and ff.flow.shape == (6, 8, 2)
    assert torch.allclose(ff.flow[0, 0], torch.tensor([-7 / 8, -5 / 6]))   # the top-left pixel centre, (x, y)
    flipped = img.clone()
    flipped.affine_mat = torch.tensor([[-1., 0, 0], [0, 1, 0], [0, 0, 1]])
    assert torch.allclose(flipped.px, img.px.flip(-1), atol=1e-6)
    ff.flow = ff.flow.flip(0)                 # sample the rows bottom to top
    flipped = img.clone()
    flipped.flow = ff
    assert torch.allclose(flipped.px, img.px.flip(-2), atol=1e-6)
    mask = ImageSegment(torch.tensor([[[0, 1, 2]]]))
    mask.affine_mat = torch.tensor([[-1., 0, 0], [0, 1, 0], [0, 0, 1]])
    assert mask.data.tolist() == [[[2, 1, 0]]]
    ff = mask.flow
    ff.flow = ff.flow.flip(1)
    mask.flow = ff
    assert mask.data.tolist() == [[[0, 1, 2]]] and mask.data.dtype == torch.long
    pts = ImagePoints(FlowField((4, 4), torch.tensor([[1., 1.]])))   # pixel (1, 1): y, x
    pts.affine_mat = torch.tensor([[-1., 0, 0], [0, 1, 0], [0, 0, 1]])
    assert torch.allclose(pts.data, torch.tensor([[-0.5, 0.5]]))


def test_save_is_atomic_and_needs_a_known_suffix(tmp_path, monkeypatch):
    target = tmp_path / 'x.png'
    Image(torch.zeros(3, 4, 4)).save(target)
    before = target.read_bytes()

    def crash(self, fp, format=None, **kwargs):
        fp.write(b'half an image')
        raise OSError('disk full')
    monkeypatch.setattr(PIL.Image.Image, 'save', crash)
    with pytest.raises(OSError, match='disk full'):
        Image(torch.ones(3, 4, 4)).save(target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ['x.png']
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"Cannot tell the image format from .*x.foo: give a suffix such as .png"):
        ImageSegment(torch.zeros(1, 4, 4, dtype=torch.long)).save(tmp_path / 'x.foo')
