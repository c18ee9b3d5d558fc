"""Augmentation: each transform against a torch oracle, points/masks following the image, batch path = item path."""
import math

import pytest
import torch
import torch.nn.functional as F

from fastlib.vision import *
from fastlib.vision.transform import ImageBatchTransform, batch_transform


def _dot_image(h, w, r, c):
    "A black uint8 image with one white pixel at (r, c)."
    px = torch.zeros(3, h, w, dtype=torch.uint8)
    px[:, r, c] = 255
    return Image(px)


def _argmax_rc(t):
    "(row, col) of the brightest pixel of a (c, h, w) tensor."
    flat = t[0].flatten().argmax().item()
    return divmod(flat, t.shape[-1])


def _point_rc(points):
    "The pixel (row, col) holding the single point of `points`."
    h, w = points.size
    y, x = points.data[0].tolist()
    return math.floor((y + 1) * h / 2), math.floor((x + 1) * w / 2)


@pytest.mark.parametrize('tfm', [flip_lr(), rotate(degrees=90.), rotate(degrees=-90.), dihedral(k=3), dihedral(k=6),
                                 zoom(scale=1.5, row_pct=0.3, col_pct=0.8), squish(scale=0.8)])
@pytest.mark.parametrize('hw', [(20, 20), (20, 30)])
def test_point_lands_on_transformed_pixel(tfm, hw):
    h, w = hw
    r, c = 6, 8
    img = _dot_image(h, w, r, c)
    pts = ImagePoints(FlowField((h, w), torch.tensor([[r + 0.5, c + 0.5]])))
    out = img.apply_tfms([tfm], mode='nearest', padding_mode='zeros')
    moved = pts.apply_tfms([tfm], do_resolve=False)
    assert out.px.max() == 1.0  # the dot is still in view
    r2, c2 = _point_rc(moved)
    assert out.px[0, r2, c2] == 1.0   # (a magnified dot covers several pixels: the point is on one of them)


def test_flip_and_rotate_match_torch():
    x = torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8)
    img = Image(x)
    flipped = img.apply_tfms([flip_lr()], mode='nearest')
    assert torch.equal((flipped.px * 255).round().byte(), x.flip(-1))
    rotated = img.apply_tfms([rotate(degrees=90.)], mode='nearest')
    # rotate(+90) turns the picture counter-clockwise as displayed: torch.rot90 with k=1 over (h, w)
    assert torch.equal((rotated.px * 255).round().byte(), torch.rot90(x, 1, (1, 2)))
    dihedrals = {tuple((img.apply_tfms([dihedral(k=k)], mode='nearest').px * 255).round().byte().flatten().tolist())
                 for k in range(8)}
    assert len(dihedrals) == 8


def test_mask_follows_image_in_item_path():
    x = torch.zeros(1, 12, 12, dtype=torch.uint8)
    x[0, 2:5, 3:9] = 1
    img, mask = Image(x * 255), ImageSegment(x.clone())
    tfms = [rotate(degrees=(-40, 40)), rand_zoom(scale=(1., 1.3)), flip_lr(p=0.5)]
    torch.manual_seed(0)
    out_img = img.apply_tfms(tfms, mode='nearest')
    out_mask = mask.apply_tfms(tfms, do_resolve=False)
    assert out_mask.data.dtype == torch.long
    assert torch.equal((out_img.px > 0.5).long(), out_mask.data)


def test_batch_path_gives_item_path_geometry():
    tfms = [symmetric_warp(magnitude=[0.1, -0.1, 0.05, 0.0], is_random=False), rotate(degrees=17., is_random=False),
            zoom(scale=1.2, row_pct=0.2, col_pct=0.7, is_random=False), flip_lr(is_random=False),
            brightness(change=0.6, is_random=False), contrast(scale=1.3, is_random=False)]
    torch.manual_seed(1)
    px = torch.randint(0, 255, (3, 16, 24), dtype=torch.uint8)
    img = Image(px)
    item = img.apply_tfms(tfms)
    deferred = img.apply_tfms(tfms, on_batch=True)
    assert deferred.data.dtype == torch.uint8
    xb, _ = batch_transform(deferred.data[None], tfms)
    assert torch.allclose(xb[0], item.px, atol=1e-5)


def test_batch_points_and_masks_follow_images():
    torch.manual_seed(3)
    n, h, w = 16, 24, 24
    rs, cs = torch.randint(8, 16, (n,)), torch.randint(8, 16, (n,))
    x = torch.zeros(n, 3, h, w, dtype=torch.uint8)
    mask = torch.zeros(n, 1, h, w, dtype=torch.uint8)
    for i in range(n):
        x[i, :, rs[i], cs[i]] = 255
        mask[i, 0, rs[i], cs[i]] = 1
    pts = torch.stack([(rs + 0.5) * 2 / h - 1, (cs + 0.5) * 2 / w - 1], 1)[:, None]   # (n, 1, 2) y, x
    tfms = [flip_lr(p=0.5), rotate(degrees=(-30, 30)), rand_zoom(scale=(1., 1.2))]
    state = torch.get_rng_state()
    xb, mb = batch_transform(x, tfms, mask, 'mask', mode='nearest', padding_mode='zeros')
    torch.set_rng_state(state)
    _, pb = batch_transform(x, tfms, pts, 'points', mode='nearest', padding_mode='zeros')
    for i in range(n):
        if xb[i].max() < 1:  # the dot fell between sampling points
            continue
        r, c = _argmax_rc(xb[i])
        assert mb[i, 0, r, c] == 1
        y_, x_ = pb[i, 0].tolist()
        assert (math.floor((y_ + 1) * h / 2), math.floor((x_ + 1) * w / 2)) == (r, c)


def test_lighting_formulas():
    x = torch.rand(2, 3, 4, 4) * 0.9 + 0.05
    same = batch_transform(x, [brightness(change=0.5), contrast(scale=1.)])[0]
    assert torch.allclose(same, x, atol=1e-5)
    out = batch_transform(x, [brightness(change=0.7, is_random=False)])[0]
    assert torch.allclose(out, torch.sigmoid(torch.logit(x) + math.log(0.7 / 0.3)), atol=1e-5)
    out = batch_transform(x, [contrast(scale=2., is_random=False)])[0]
    assert torch.allclose(out, torch.sigmoid(torch.logit(x) * 2), atol=1e-5)


def test_probability_zero_changes_nothing_and_p_is_per_image():
    x = torch.randint(0, 255, (64, 3, 8, 8), dtype=torch.uint8)
    out = batch_transform(x, [flip_lr(p=0.)])[0]
    assert torch.allclose(out, x.float() / 255)
    torch.manual_seed(0)
    out = batch_transform(x, [flip_lr(p=0.5)])[0]
    flipped = torch.tensor([torch.allclose(o, xi.float().flip(-1) / 255) for o, xi in zip(out, x)])
    assert 10 < int(flipped.sum()) < 54


def test_crop_pad_modes_match_torch_pad():
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5) / 40
    img = Image(x)
    out = crop_pad(img, size=(8, 9), padding_mode='reflection')
    ref = F.pad(x[None], (2, 2, 2, 2), mode='reflect')[0]
    assert torch.equal(out.px, ref)
    out = crop_pad(img, size=(8, 9), padding_mode='zeros')
    assert torch.equal(out.px, F.pad(x[None], (2, 2, 2, 2))[0])
    out = crop_pad(img, size=(2, 3), row_pct=0., col_pct=1.)
    assert torch.equal(out.px, x[:, :2, 2:])


def test_resize_methods():
    img = Image(torch.rand(3, 20, 40))
    assert img.apply_tfms([], size=10).shape == (3, 10, 10)                         # CROP
    squished = img.apply_tfms([], size=(10, 10), resize_method=ResizeMethod.SQUISH)
    assert torch.allclose(squished.px, F.interpolate(img.px[None], size=(10, 10), mode='bilinear',
                                                     antialias=True, align_corners=False)[0])
    padded = img.apply_tfms([], size=20, resize_method=ResizeMethod.PAD, padding_mode='zeros')
    assert padded.shape == (3, 20, 20) and padded.px[:, :5].abs().sum() == 0 and padded.px[:, 5:15].sum() > 0
    assert img.apply_tfms([], size=15, mult=8).shape == (3, 16, 16)


def test_get_transforms_parameters():
    train, valid = get_transforms(max_rotate=20., max_lighting=0.4, p_affine=0.5, xtra_tfms=[cutout()])
    names = [t.tfm.name for t in train]
    assert names == ['crop_pad', 'flip_affine', 'symmetric_warp', 'rotate', 'zoom', 'brightness', 'contrast', 'cutout']
    rot = train[3]
    assert rot.kwargs['degrees'] == (-20., 20.) and rot.p == 0.5
    assert train[5].kwargs['change'] == pytest.approx((0.3, 0.7))
    assert train[6].kwargs['scale'] == pytest.approx((0.6, 1 / 0.6))
    assert [t.tfm.name for t in valid] == ['crop_pad']
    train, _ = get_transforms(do_flip=True, flip_vert=True, max_warp=0., max_zoom=1., max_lighting=0.)
    assert [t.tfm.name for t in train] == ['crop_pad', 'dihedral', 'rotate']


def test_cutout_and_rand_pad():
    img = Image(torch.ones(3, 20, 20))
    out = img.apply_tfms([cutout(n_holes=1, length=6)])
    zero = out.px[0] == 0
    rows, cols = zero.any(1).sum(), zero.any(0).sum()
    # one square of side 6, clipped where it crosses the border
    assert 3 <= rows <= 6 and 3 <= cols <= 6 and zero.sum() == rows * cols
    out = img.apply_tfms(rand_pad(4, 20))
    assert out.shape == (3, 20, 20)
    assert rand_resize_crop(16)[1].kwargs['size'] == 16


def test_unknown_parameter_is_named():
    with pytest.raises(TypeError, match="rotate has no parameter 'degree'"):
        rotate(degree=10)


def test_direct_call_applies():
    img = _dot_image(10, 10, 1, 2)
    out = flip_lr(img)
    assert _argmax_rc(out.px) == (1, 7)


def test_batch_transform_reads_dataset_tfms():
    class DS:
        tfms = [flip_lr(is_random=False)]
        tfmargs = {'on_batch': True}
        tfm_y = False
    x = torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8)
    t = ImageBatchTransform(DS())
    out, y = t((x, torch.tensor([0, 1])))
    assert torch.allclose(out, x.flip(-1).float() / 255)
    DS.tfmargs = {}
    out, _ = t((x, torch.tensor([0, 1])))
    assert torch.allclose(out, x.float() / 255)


def test_affine_grid_matches_torch_and_the_homography():
    torch.manual_seed(0)
    n, h, w = 5, 7, 9
    mats = torch.eye(3).repeat(n, 1, 1) + torch.randn(n, 3, 3) * 0.1
    mats[:, 2] = torch.tensor([0., 0., 1.])
    want = F.affine_grid(mats[:, :2], [n, 1, h, w], align_corners=False)
    assert torch.allclose(affine_grid(mats, h, w), want, atol=1e-6)
    mats[:, 2, :2] = torch.randn(n, 2) * 0.1   # projective: each pixel centre through the matrix, then divided
    ys, xs = torch.meshgrid((torch.arange(h) * 2 + 1) / h - 1, (torch.arange(w) * 2 + 1) / w - 1, indexing='ij')
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(-1, 3)
    moved = pts @ mats.transpose(1, 2)
    want = (moved[..., :2] / moved[..., 2:]).view(n, h, w, 2)
    assert torch.allclose(affine_grid(mats, h, w), want, atol=1e-5)


def test_lighting_runs_before_resampling_and_uint8_table_matches_floats():
    torch.manual_seed(2)
    x = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8)   # square: no aspect correction
    tfms = [rotate(degrees=25., is_random=False), brightness(change=0.7, is_random=False)]
    out = batch_transform(x, tfms)[0]
    lit = torch.sigmoid(torch.logit(x.float() / 255, eps=1e-5) + math.log(0.7 / 0.3))
    t = math.radians(25.)
    rot = torch.tensor([[math.cos(t), -math.sin(t), 0.], [math.sin(t), math.cos(t), 0.]]).expand(6, 2, 3)
    want = F.grid_sample(lit, F.affine_grid(rot, list(x.shape), align_corners=False), padding_mode='reflection',
                         align_corners=False)
    assert torch.allclose(out, want, atol=1e-5)   # fastai v1's order: lighting on the pixels, then the resampling
    # random lighting drawn per image: the 256-level table gives what the float path gives for the same draws
    tfms = [brightness(change=(0.3, 0.7), p=0.5), contrast(scale=(0.6, 1.6))]
    state = torch.get_rng_state()
    table = batch_transform(x, tfms)[0]
    torch.set_rng_state(state)
    floats = batch_transform(x.float() / 255, tfms)[0]
    assert not torch.allclose(table, x.float() / 255, atol=1e-2)
    assert torch.allclose(table, floats, atol=1e-5)
