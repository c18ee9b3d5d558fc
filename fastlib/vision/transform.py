"""Data augmentation: fastai v1's transforms (get_transforms, rotate, zoom, flip_lr, crop_pad, ...) and the batch
transform that runs the geometric and lighting ones on whole batches on the device.

Each geometric transform is a function of its parameters, given as tensors of n rows (one per image), that returns
(n, 3, 3) output->input matrices in normalized coordinates (see `fastlib.vision.image`). The same function serves
one item (`img.apply_tfms(tfms)`, n = 1, parameters resolved once) and a batch (`ImageBatchTransform`, parameters
drawn per image on the device), so both paths give the same geometry for the same parameters.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import listify
from ..serialization import register_safe_globals
from .image import (Image, RandTransform, TfmAffine, TfmCoord, TfmCrop, TfmLighting, TfmPixel, _crop_target,
                    _grid_of, _move_points, apply_lighting, apply_lighting_uint8, compose_geometry)

__all__ = ['brightness', 'contrast', 'crop', 'crop_pad', 'cutout', 'dihedral', 'dihedral_affine', 'flip_affine',
           'flip_lr', 'jitter', 'pad', 'perspective_warp', 'rgb_randomize', 'rotate', 'skew', 'squish',
           'symmetric_warp', 'tilt', 'zoom', 'zoom_squish', 'rand_pad', 'rand_zoom', 'rand_crop', 'zoom_crop',
           'get_transforms', 'rand_resize_crop', 'ImageBatchTransform', 'ImagesToFloat', 'batch_transform']


def _mats(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    "(n, 3, 3) affine matrices [[a, b, c], [d, e, f], [0, 0, 1]] from n-row tensors."
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, c, d, e, f, zero, zero, one], -1).view(-1, 3, 3)


# ------------------------------------------------------------------------------------------------- affine funcs
def _rotate(degrees: Tensor = 0.) -> Tensor:
    "Rotate by `degrees` (counter-clockwise as displayed)."
    t = torch.as_tensor(degrees) * math.pi / 180
    cos, sin, zero = t.cos(), t.sin(), torch.zeros_like(t)
    return _mats(cos, -sin, zero, sin, cos, zero)


def _zoom(scale: Tensor = 1., row_pct: Tensor = 0.5, col_pct: Tensor = 0.5) -> Tensor:
    "Zoom in by `scale` around the point at (`row_pct`, `col_pct`) of the room it leaves."
    s = 1 / torch.as_tensor(scale)
    col_c, row_c = (1 - s) * (2 * col_pct - 1), (1 - s) * (2 * row_pct - 1)
    zero = torch.zeros_like(s)
    return _mats(s, zero, col_c, zero, s, row_c)


def _squish(scale: Tensor = 1., row_pct: Tensor = 0.5, col_pct: Tensor = 0.5) -> Tensor:
    "Squish by `scale` (> 1: narrower along the width, < 1: along the height), centred at (`row_pct`, `col_pct`)."
    scale = torch.as_tensor(scale)
    cs = torch.where(scale <= 1, scale, torch.ones_like(scale))
    rs = torch.where(scale <= 1, torch.ones_like(scale), 1 / scale)
    zero = torch.zeros_like(scale)
    return _mats(cs, zero, (1 - cs) * (2 * col_pct - 1), zero, rs, (1 - rs) * (2 * row_pct - 1))


def _zoom_squish(scale: Tensor = 1., squish: Tensor = 1., invert: Tensor = 0., row_pct: Tensor = 0.5,
                 col_pct: Tensor = 0.5) -> Tensor:
    "Zoom by `scale` and change the aspect ratio by `squish` (inverted when `invert`), window at (row, col)."
    scale, squish = torch.as_tensor(scale), torch.as_tensor(squish)
    squish = torch.where(torch.as_tensor(invert) > 0.5, 1 / squish, squish)
    cs, rs = 1 / scale, 1 / scale
    rs = torch.where(squish > 1, rs / squish, rs)
    cs = torch.where(squish > 1, cs, cs * squish)
    zero = torch.zeros_like(cs)
    return _mats(cs, zero, (1 - cs) * (2 * col_pct - 1), zero, rs, (1 - rs) * (2 * row_pct - 1))


def _flip_affine() -> Tensor:
    "Flip left-right."
    return torch.tensor([[-1., 0, 0], [0, 1, 0], [0, 0, 1]])


def _dihedral(k: Tensor = 0) -> Tensor:
    "One of the 8 symmetries of the square: bit 0 flips left-right, bit 1 top-bottom, bit 2 transposes."
    k = torch.as_tensor(k).round().long()
    sx = 1 - 2 * (k & 1).float()
    sy = 1 - 2 * ((k >> 1) & 1).float()
    tr = ((k >> 2) & 1).bool()
    zero = torch.zeros_like(sx)
    flips = _mats(sx, zero, zero, zero, sy, zero)
    swap = _mats(zero, torch.ones_like(sx), zero, torch.ones_like(sx), zero, zero)
    return torch.where(tr[:, None, None], swap @ flips, flips)


# -------------------------------------------------------------------------------------------------- coord funcs
_ORIG = torch.tensor([[-1., -1.], [-1., 1.], [1., -1.], [1., 1.]])   # corners, (x, y)


def _homography(src: Tensor, dst: Tensor) -> Tensor:
    "The (n, 3, 3) projective maps taking the 4 points `src` (n, 4, 2) to `dst` (n, 4, 2)."
    n = src.shape[0]
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1).double()                        # (n, 8, 8)
    b = torch.cat([u, v], 1).double()                                  # (n, 8)
    h = torch.linalg.solve(a, b).float()
    return torch.cat([h, torch.ones(n, 1, device=h.device)], 1).view(n, 3, 3)


def _warp(targ: Tensor, invert: Tensor) -> Tensor:
    "Homographies taking the image corners to `targ` (n, 4, 2) (or back when `invert`)."
    orig = _ORIG.to(targ.device).expand_as(targ)
    inv = torch.as_tensor(invert, device=targ.device).expand(targ.shape[0]) > 0.5
    src = torch.where(inv[:, None, None], targ, orig)
    dst = torch.where(inv[:, None, None], orig, targ)
    return _homography(src, dst)


def _perspective_warp(magnitude: Tensor = 0., invert: Tensor = 0.) -> Tensor:
    "Move the 4 corners by `magnitude` (8 values: x, y of each corner)."
    m = torch.as_tensor(magnitude, dtype=torch.float32)
    m = m[:, None].expand(-1, 8) if m.dim() == 1 else m
    return _warp(_ORIG.to(m.device) + m.view(-1, 4, 2), invert)


def _symmetric_warp(magnitude: Tensor = 0., invert: Tensor = 0.) -> Tensor:
    "Tilt the image symmetrically: `magnitude` (4 values) moves opposite corners in pairs."
    m = torch.as_tensor(magnitude, dtype=torch.float32)
    m = m[:, None].expand(-1, 4) if m.dim() == 1 else m
    targ = torch.stack([torch.stack([-1 - m[:, 3], -1 - m[:, 1]], 1), torch.stack([-1 - m[:, 2], 1 + m[:, 1]], 1),
                        torch.stack([1 + m[:, 3], -1 - m[:, 0]], 1), torch.stack([1 + m[:, 2], 1 + m[:, 0]], 1)], 1)
    return _warp(targ, invert)


def _skew(direction: Tensor = 0, magnitude: Tensor = 0., invert: Tensor = 0.) -> Tensor:
    "Pull one corner outwards: `direction` 0..7 picks the corner (d // 2) and the axis (d % 2), by `magnitude`."
    d = torch.as_tensor(direction).round().long()
    m = torch.as_tensor(magnitude, dtype=torch.float32)
    move = torch.zeros(d.shape[0], 8, device=m.device)
    idx = (d // 2) * 2 + d % 2
    sign = _ORIG.to(m.device).view(-1)[idx]
    move.scatter_(1, idx[:, None], (m * sign)[:, None])
    return _warp(_ORIG.to(m.device) + move.view(-1, 4, 2), invert)


def _tilt(direction: Tensor = 0, magnitude: Tensor = 0., invert: Tensor = 0.) -> Tensor:
    "Tilt one side (`direction` 0 left, 1 right, 2 top, 3 bottom) by spreading its corners by `magnitude`."
    d = torch.as_tensor(direction).round().long()
    m = torch.as_tensor(magnitude, dtype=torch.float32)
    n = d.shape[0]
    move = torch.zeros(n, 4, 2, device=m.device)
    zero = torch.zeros_like(m)
    # per direction: the corners whose other coordinate spreads (x-side tilts spread y, y-side tilts spread x)
    spread = {0: ([0, 1], 1), 1: ([2, 3], 1), 2: ([0, 2], 0), 3: ([1, 3], 0)}
    for k, (corners, axis) in spread.items():
        sel = d == k
        for c in corners:
            move[:, c, axis] += torch.where(sel, m * _ORIG[c, axis], zero)
    return _warp(_ORIG.to(m.device) + move, invert)


def _jitter(grid: Tensor, magnitude: Tensor = 0.) -> Tensor:
    "Move each sampling point of the grid by a random amount up to `magnitude`."
    return grid + (torch.rand_like(grid) * 2 - 1) * magnitude


# ----------------------------------------------------------------------------------------------- lighting funcs
def _brightness(x: Tensor, change: Tensor = 0.5) -> Tensor:
    "Brightness: 0.5 leaves the image unchanged, 0 makes it black, 1 white (on the logit scale)."
    change = torch.as_tensor(change).clamp(1e-5, 1 - 1e-5)
    return x + torch.log(change / (1 - change))


def _contrast(x: Tensor, scale: Tensor = 1.) -> Tensor:
    "Contrast: multiply the logits by `scale` (1 unchanged, 0 grey)."
    return x * scale


# -------------------------------------------------------------------------------------------------- pixel funcs
def _crop_pad(x: Image, size: Any = None, padding_mode: str = 'reflection', row_pct: float = 0.5,
              col_pct: float = 0.5) -> Image:
    "Crop or pad `x` to `size` (default its own), the window at (`row_pct`, `col_pct`) of the room."
    if size is None:
        return x
    h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
    return x._crop_pad(int(h), int(w), row_pct, col_pct, padding_mode)


def _crop(x: Image, size: Any = None, row_pct: float = 0.5, col_pct: float = 0.5, padding_mode: str = 'reflection'
          ) -> Image:
    "Crop `x` to `size` at (`row_pct`, `col_pct`) (pads, by `padding_mode`, when `size` is larger)."
    return _crop_pad(x, size, padding_mode, row_pct, col_pct)


def _pad(x: Image, padding: int = 0, mode: str = 'reflection') -> Image:
    "Pad `x` by `padding` pixels on each side with `mode` ('reflection', 'border' or 'zeros')."
    h, w = x.size
    padding = int(padding)
    return x._crop_pad(h + 2 * padding, w + 2 * padding, 0.5, 0.5, mode)


def _cutout(x: Image, n_holes: int = 1, length: int = 40) -> Image:
    "Black out `n_holes` squares of side `length` at random places."
    px = x._px.clone()
    h, w = px.shape[-2:]
    for _ in range(int(n_holes)):
        cy, cx = random.randrange(h), random.randrange(w)
        half = int(length) // 2
        px[:, max(0, cy - half):cy + half + int(length) % 2, max(0, cx - half):cx + half + int(length) % 2] = 0
    return x._new(px)


def _rgb_randomize(x: Image, channel: int = 0, thresh: float = 0.3) -> Image:
    "Replace `channel` by random noise up to `thresh`."
    px = x.px.clone()
    px[int(channel)] = torch.rand(px.shape[1:]) * random.uniform(0, thresh)
    return x._new(px)


register_safe_globals(_rotate, _zoom, _squish, _zoom_squish, _flip_affine, _dihedral, _perspective_warp,
                      _symmetric_warp, _skew, _tilt, _jitter, _brightness, _contrast, _crop_pad, _crop, _pad, _cutout,
                      _rgb_randomize)

rotate = TfmAffine(_rotate, samplers={'degrees': 'uniform'})
zoom = TfmAffine(_zoom, samplers={'scale': 'uniform', 'row_pct': 'uniform', 'col_pct': 'uniform'})
squish = TfmAffine(_squish, samplers={'scale': 'uniform', 'row_pct': 'uniform', 'col_pct': 'uniform'})
zoom_squish = TfmAffine(_zoom_squish, samplers={'scale': 'uniform', 'squish': 'log_uniform', 'invert': 'uniform_int',
                                                'row_pct': 'uniform', 'col_pct': 'uniform'})
flip_lr = TfmAffine(_flip_affine)
flip_affine = TfmAffine(_flip_affine)
dihedral = TfmAffine(_dihedral, samplers={'k': 'uniform_int'})
dihedral_affine = TfmAffine(_dihedral, samplers={'k': 'uniform_int'})
perspective_warp = TfmCoord(_perspective_warp, samplers={'magnitude': ('uniform', 8)})
symmetric_warp = TfmCoord(_symmetric_warp, samplers={'magnitude': ('uniform', 4)})
skew = TfmCoord(_skew, samplers={'direction': 'uniform_int', 'magnitude': 'uniform'})
tilt = TfmCoord(_tilt, samplers={'direction': 'uniform_int', 'magnitude': 'uniform'})
jitter = TfmCoord(_jitter, samplers={'magnitude': 'uniform'})
brightness = TfmLighting(_brightness, samplers={'change': 'uniform'})
contrast = TfmLighting(_contrast, samplers={'scale': 'log_uniform'})
crop_pad = TfmCrop(_crop_pad, samplers={'row_pct': 'uniform', 'col_pct': 'uniform'})
crop = TfmCrop(_crop, samplers={'row_pct': 'uniform', 'col_pct': 'uniform'})
pad = TfmPixel(_pad, order=-10)
cutout = TfmPixel(_cutout, order=20, samplers={'n_holes': 'uniform_int', 'length': 'uniform_int'}, use_on_y=False)
rgb_randomize = TfmPixel(_rgb_randomize, order=20, use_on_y=False)


def rand_pad(padding: int, size: int, mode: str = 'reflection') -> list[RandTransform]:
    "Pad by `padding` with `mode`, then crop a random window of `size`."
    return [pad(padding=padding, mode=mode), crop(size=size, row_pct=(0, 1), col_pct=(0, 1))]


def rand_zoom(scale: float | tuple = 1., p: float = 1.) -> RandTransform:
    "Zoom by `scale` (a range draws it) at a random place, with probability `p`."
    return zoom(scale=scale, row_pct=(0, 1), col_pct=(0, 1), p=p)


def rand_crop(*args: Any, padding_mode: str = 'reflection', p: float = 1.) -> RandTransform:
    "Crop (or pad) to the target size at a random place, with probability `p`."
    return crop_pad(*args, padding_mode=padding_mode, row_pct=(0, 1), col_pct=(0, 1), p=p)


def zoom_crop(scale: float | tuple, do_rand: bool = False, p: float = 1.) -> list[RandTransform]:
    "Zoom by `scale` then crop to the target size (both at random places when `do_rand`), with probability `p`."
    zoom_fn = rand_zoom if do_rand else zoom
    crop_fn = rand_crop if do_rand else crop_pad
    return [zoom_fn(scale=scale, p=p), crop_fn()]


def rand_resize_crop(size: int, max_scale: float = 2., ratios: tuple = (0.75, 1.33)) -> list[RandTransform]:
    "Random zoom up to `max_scale` with an aspect ratio in `ratios`, then a crop to `size`."
    return [zoom_squish(scale=(1., max_scale), squish=ratios, invert=(0, 1), row_pct=(0, 1), col_pct=(0, 1)),
            crop(size=size)]


def get_transforms(do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10., max_zoom: float = 1.1,
                   max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75, p_lighting: float = 0.75,
                   xtra_tfms: Sequence | None = None) -> tuple[list, list]:
    """The standard (train, valid) transforms: random crop, flip (`do_flip`; all 8 symmetries with `flip_vert`),
    warp up to `max_warp`, rotation up to `max_rotate` degrees and zoom up to `max_zoom` (each with probability
    `p_affine`), brightness and contrast changes up to `max_lighting` (probability `p_lighting`), plus `xtra_tfms`.
    """
    res = [rand_crop()]
    if do_flip:
        res.append(dihedral_affine() if flip_vert else flip_lr(p=0.5))
    if max_warp:
        res.append(symmetric_warp(magnitude=(-max_warp, max_warp), p=p_affine))
    if max_rotate:
        res.append(rotate(degrees=(-max_rotate, max_rotate), p=p_affine))
    if max_zoom > 1:
        res.append(rand_zoom(scale=(1., max_zoom), p=p_affine))
    if max_lighting:
        res.append(brightness(change=(0.5 * (1 - max_lighting), 0.5 * (1 + max_lighting)), p=p_lighting))
        res.append(contrast(scale=(1 - max_lighting, 1 / (1 - max_lighting)), p=p_lighting))
    return res + listify(xtra_tfms), [crop_pad()]


# ---------------------------------------------------------------------------------------------- batch transform
def batch_transform(x: Tensor, tfms: Sequence[RandTransform], y: Any = None, y_kind: str | None = None,
                    mode: str = 'bilinear', padding_mode: str = 'reflection', remove_out: bool = True,
                    size: tuple[int, int] | None = None) -> tuple[Tensor, Any]:
    """The images `x` (n, c, h, w; uint8 or float in [0, 1]) with the geometric and lighting transforms of `tfms`
    drawn per image and applied in one `grid_sample`; the targets `y` follow the same geometry when `y_kind` is
    'mask' (n, 1, h, w), 'points' (n, k, 2 as y, x) or 'bbox' ((n, k, 4), (n, k) labels; 0 is padding).

    With `size` (h, w), the images come out that size: the resampling reads the smaller sources directly (bilinear
    upsampling folded into it), or, with no geometric transform to do, they are interpolated.
    """
    tfms = sorted(listify(tfms), key=lambda o: (o.tfm.stage, o.tfm.order))
    n, _, h0, w0 = x.shape
    h, w = size if size is not None else (h0, w0)
    mat, grid_fns = compose_geometry(tfms, n, h, w, x.device, batch=True)
    # Lighting first (fastai v1's order): on uint8 pixels it is a lookup in a 256-level table per image, which
    # also does the conversion to float.
    x = apply_lighting_uint8(x, tfms, batch=True) if x.dtype == torch.uint8 else apply_lighting(x, tfms, batch=True)
    if mat is not None or grid_fns:
        grid = _grid_of(mat, grid_fns, n, h, w, x.device)
        x = F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
        if y_kind == 'image':
            y = F.grid_sample(y, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
        elif y_kind == 'mask':
            y = F.grid_sample(y.float(), grid, mode='nearest', padding_mode=padding_mode, align_corners=False)
        elif y_kind == 'points' and mat is not None:
            y = _move_points(y.flip(-1).float(), mat).flip(-1)
        elif y_kind == 'bbox' and mat is not None:
            y = _move_boxes(y[0], y[1], mat, remove_out)
    elif (h, w) != (h0, w0):
        x = F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)
    return x, y


def _move_boxes(boxes: Tensor, labels: Tensor, mat: Tensor, remove_out: bool) -> tuple[Tensor, Tensor]:
    "Padded boxes (n, k, 4: top, left, bottom, right) moved by `mat`: the box around the moved corners, clipped."
    n, k, _ = boxes.shape
    t, l, b, r = boxes.float().unbind(-1)
    corners = torch.stack([torch.stack(p, -1) for p in ((l, t), (r, t), (l, b), (r, b))], 2)   # (n, k, 4, 2) x, y
    moved = _move_points(corners.view(n, k * 4, 2), mat).view(n, k, 4, 2)
    mins, maxs = moved.min(2).values.clamp(-1, 1), moved.max(2).values.clamp(-1, 1)
    res = torch.stack([mins[..., 1], mins[..., 0], maxs[..., 1], maxs[..., 0]], -1)
    if remove_out:
        gone = ((maxs - mins) <= 0).any(-1)
        labels = labels.masked_fill(gone, 0)
        res = res.masked_fill(gone[..., None], 0.)
    return res, labels


@register_safe_globals
class ImageBatchTransform:
    """The device side of an image DataBunch's loader: uint8 -> float, then the random geometric and lighting
    transforms of the dataset `ds` (a LabelList whose items stopped before them, `on_batch=True`) on the whole batch.

    It reads `ds.tfms` at each batch, so changing the dataset's transforms takes effect at once (in a loader's
    worker processes: when they start). With `to_uint8`, images that came as uint8 leave as uint8 again (the
    augmented pixels rounded to 8 bits): a worker process then hands over a quarter of the bytes, and the loader
    makes them float in this process (`ImagesToFloat`).
    """

    def __init__(self, ds: Any, to_uint8: bool = False):
        self.ds, self.to_uint8 = ds, to_uint8

    def __repr__(self) -> str:
        return f'ImageBatchTransform({len(listify(getattr(self.ds, "tfms", None)))} transforms)'

    def __call__(self, b: tuple) -> tuple:
        x, y = b
        ds = self.ds
        args = getattr(ds, 'tfmargs', None) or {}
        y_kind = getattr(getattr(ds, 'y', None), '_y_kind', None)
        if not isinstance(x, Tensor):   # several inputs: nothing image-specific to do
            return x, y
        was_uint8 = x.dtype == torch.uint8
        if y_kind == 'image' and isinstance(y, Tensor) and y.dtype == torch.uint8:
            y = y.float().div_(255)
        y_ok = y_kind in ('mask', 'image') and isinstance(y, Tensor) and y.dim() == 4 or \
            y_kind == 'points' and isinstance(y, Tensor) and y.dim() == 3 or \
            y_kind == 'bbox' and isinstance(y, (tuple, list)) and len(y) == 2
        # Only uint8 batches still need their augmentation (a float one was made by a dataset of float images).
        on_batch = args.get('on_batch', False) and x.dtype == torch.uint8
        tfms = listify(ds.tfms) if on_batch else []
        use_y = bool(getattr(ds, 'tfm_y', False)) and y_ok
        if use_y and tfms and any(t not in listify(getattr(ds, 'tfms_y', tfms)) for t in tfms
                                  if t.tfm.kind in ('affine', 'coord')):
            use_y = False  # a geometric transform flagged use_on_y=False: targets cannot share the grid
        # Items may have left their upsampling to `size` to this transform (`Image._resized_later`).
        size = _crop_target(args['size'], args.get('mult')) if on_batch and args.get('resize_on_batch') and \
            args.get('size') is not None else None
        x, y2 = batch_transform(x, tfms, y if use_y else None, y_kind if use_y else None,
                                mode=args.get('mode', 'bilinear'), padding_mode=args.get('padding_mode', 'reflection'),
                                remove_out=args.get('remove_out', True), size=size)
        if use_y:
            y = y2
        if y_kind == 'mask' and isinstance(y, Tensor) and not torch.is_floating_point(y) or \
                y_kind == 'mask' and use_y:
            y = y.round().long() if torch.is_floating_point(y) else y.long()
        if getattr(self, 'to_uint8', False) and was_uint8 and x.is_floating_point():
            x = x.mul_(255).round_().clamp_(0, 255).to(torch.uint8)   # in [0, 1] after lighting and resampling
        return x, y


@register_safe_globals
class ImagesToFloat:
    """The part of a CPU image loader with workers that runs in this process: the uint8 images its workers
    augmented (`ImageBatchTransform(to_uint8=True)`) to float in [0, 1], then normalized by `norm` when given.

    It runs on one thread: the workers keep the cores busy, and torch's parallel kernels here would wait for them.
    """

    def __init__(self, norm: Callable | None = None):
        self.norm = norm

    def __repr__(self) -> str:
        return f'ImagesToFloat(normalized={self.norm is not None})'

    def __call__(self, b: tuple) -> tuple:
        x, y = b
        if not (isinstance(x, Tensor) and x.dtype == torch.uint8):
            return b
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            b = (x.mul(1 / 255), y)   # one pass to float32
            return self.norm(b) if self.norm is not None else b
        finally:
            torch.set_num_threads(n)
