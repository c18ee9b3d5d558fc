"""Image items (Image, ImageSegment, ImagePoints, ImageBBox), opening and showing them, and the transform engine.

Geometry convention: every geometric transform is a 3x3 matrix in normalized coordinates (x, y in [-1, 1], pixel
centres at (2i+1)/n - 1, i.e. `align_corners=False`) that maps an output location to the input location it reads
from. Transforms applied one after the other compose as M = M1 @ M2 @ ..., so flips, rotations, zooms and warps of
one image become one matrix and one `grid_sample`, per item here and per batch in `fastlib.vision.transform`. Points
move the other way: p_out = M^-1 p_in.

Order of the stages (item and batch paths alike): resize to the target size, pixel and crop transforms (crop_pad,
cutout, ...), then all geometric transforms in one resampling, then lighting (on the logit of the pixels).
"""
from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Sequence
from enum import IntEnum
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import PIL.Image
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import PathOrStr, atomic_write, ifnone, is_listy, listify
from ..data_block import Category, ItemBase
from ..serialization import register_safe_globals
from ..torch_core import log_uniform

__all__ = ['PIL', 'Image', 'ImageSegment', 'ImagePoints', 'ImageBBox', 'FlowField', 'ResizeMethod', 'Transform',
           'RandTransform', 'TfmAffine', 'TfmPixel', 'TfmCoord', 'TfmCrop', 'TfmLighting', 'CoordFunc', 'TfmList',
           'open_image', 'open_mask', 'open_mask_rle', 'rle_encode', 'rle_decode', 'show_image', 'image2np',
           'pil2tensor', 'bb2hw', 'tis2hw', 'scale_flow', 'plot_flat', 'plot_multi', 'show_multi', 'show_all',
           'affine_grid', 'compose_geometry', 'apply_lighting',
           'apply_lighting_uint8']

CoordFunc = Callable
TfmList = Any


@register_safe_globals
class ResizeMethod(IntEnum):
    "How `size` is reached: CROP (cover, then crop), PAD (fit, then pad), SQUISH (stretch) or NO (crop/pad only)."
    CROP = 1
    PAD = 2
    SQUISH = 3
    NO = 4


# ----------------------------------------------------------------------------------------------- tensors <-> PIL
def pil2tensor(image: PIL.Image.Image | np.ndarray, dtype: Any) -> Tensor:
    "The PIL image (or HWC array) `image` as a CHW tensor of numpy `dtype`."
    a = np.array(image, dtype=dtype)  # a writable copy (np.asarray of a PIL image is read-only)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a).permute(2, 0, 1)


def _save_pil(img: PIL.Image.Image, fn: PathOrStr) -> None:
    "Write `img` to `fn` in the format its suffix names, through a temporary file (a crash leaves no half image)."
    fmt = PIL.Image.registered_extensions().get(Path(fn).suffix.lower())
    if fmt is None:
        raise ValueError(f"Cannot tell the image format from {fn}: give a suffix such as .png or .jpg.")
    with atomic_write(fn) as f:
        img.save(f, format=fmt)


def image2np(image: Tensor) -> np.ndarray:
    "The CHW tensor `image` as an HWC numpy array (HW for one channel)."
    res = image.detach().cpu().permute(1, 2, 0).numpy()
    return res[..., 0] if res.shape[2] == 1 else res


def bb2hw(a: Sequence[float]) -> np.ndarray:
    "The box `a` = [top, left, bottom, right] as [left, top, width, height] (matplotlib's Rectangle)."
    return np.array([a[1], a[0], a[3] - a[1], a[2] - a[0]])


def tis2hw(size: int | Sequence[int]) -> tuple[int, int]:
    "`size` (an int, (h, w) or (c, h, w)) as (h, w)."
    try:
        hw = (size, size) if isinstance(size, Integral) else tuple(int(o) for o in size)[-2:]
    except (TypeError, ValueError):
        hw = ()
    if isinstance(size, str) or len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"size must be a positive int or a (height, width) pair of them, e.g. size=224 or "
                         f"size=(224, 320); not {size!r}.")
    return hw


def _open_pil(fn: PathOrStr, convert_mode: str, after_open: Callable | None) -> PIL.Image.Image:
    "The image file `fn` opened and converted to `convert_mode`, with an error naming the file when it is unreadable."
    try:
        with PIL.Image.open(fn) as im:
            if convert_mode == 'RGB' and im.mode in ('RGBA', 'LA', 'PA') or (im.mode == 'P' and 'transparency' in im.info
                                                                               and convert_mode == 'RGB'):
                # Composite transparent pixels on black, the same for every file (PIL's plain convert keeps
                # whatever colour hides under alpha 0, which differs from file to file).
                im = im.convert('RGBA')
                bg = PIL.Image.new('RGBA', im.size, (0, 0, 0, 255))
                im = PIL.Image.alpha_composite(bg, im)
            if not convert_mode or im.mode == convert_mode:
                im.load()   # the decoded pixels outlive the file handle; no conversion copy
            else:
                im = im.convert(convert_mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"No image file at {fn}.") from None
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise OSError(f"Cannot read the image file {fn} ({type(e).__name__}: {e}). Remove or replace it "
                      f"(`verify_images(folder, delete=True)` finds such files).") from None
    return after_open(im) if after_open is not None else im


def _open_tensor(fn: PathOrStr, convert_mode: str = 'RGB', after_open: Callable | None = None) -> Tensor:
    "The image file `fn` as a uint8 CHW tensor (what DataLoader workers produce: 4x smaller than floats)."
    im = _open_pil(fn, convert_mode, after_open)
    if im.mode in ('I', 'I;16', 'F'):
        return pil2tensor(im, np.float32)
    return pil2tensor(im, np.uint8)


def open_image(fn: PathOrStr, div: bool = True, convert_mode: str = 'RGB', cls: type = None,
               after_open: Callable | None = None) -> Image:
    "Open the image file `fn` as a `cls` (default Image), in `convert_mode`; `div` scales pixels to [0, 1]."
    cls = ifnone(cls, Image)
    x = _open_tensor(fn, convert_mode, after_open)
    x = x.float()
    if div:
        x.div_(255)
    return cls(x)


def open_mask(fn: PathOrStr, div: bool = False, convert_mode: str = 'L', after_open: Callable | None = None
              ) -> ImageSegment:
    "Open the mask file `fn` as an ImageSegment (class codes as pixel values; `div` divides them by 255)."
    x = _open_tensor(fn, convert_mode, after_open)
    if div:
        x = x.float().div_(255)
    return ImageSegment(x)


def rle_decode(mask_rle: str, shape: tuple[int, int]) -> np.ndarray:
    "The run-length encoded `mask_rle` ('start length ...', 1-based starts, row-major) as a uint8 array of `shape`."
    s = np.asarray(str(mask_rle).split(), dtype=np.int64)
    res = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for start, length in zip(s[0::2] - 1, s[1::2]):
        res[start:start + length] = 1
    return res.reshape(shape)


def rle_encode(img: np.ndarray) -> str:
    "The binary mask `img` run-length encoded ('start length ...', 1-based starts, row-major)."
    pixels = np.concatenate([[0], np.asarray(img).flatten() > 0, [0]]).astype(np.int8)
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[0::2]
    return ' '.join(str(o) for o in runs)


def open_mask_rle(mask_rle: str, shape: tuple[int, int]) -> ImageSegment:
    "An ImageSegment of `shape` (h, w) from the run-length encoded `mask_rle`."
    return ImageSegment(torch.from_numpy(rle_decode(mask_rle, shape))[None])


def show_image(img: Image | Tensor, ax: Any = None, figsize: tuple = (3, 3), hide_axis: bool = True,
               cmap: str = 'binary', alpha: float | None = None, **kwargs: Any) -> Any:
    "Show the image `img` (an Image or a CHW tensor) on `ax` (a new figure of `figsize` when None)."
    import matplotlib.pyplot as plt
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    t = img.px if isinstance(img, Image) else img
    a = image2np(t.float() / 255 if t.dtype == torch.uint8 else t.float())
    ax.imshow(a.clip(0, 1) if a.ndim == 3 else a, cmap=cmap, alpha=alpha, **kwargs)
    if hide_axis:
        ax.axis('off')
    return ax


# ------------------------------------------------------------------------------------------------ geometry engine
def affine_grid(mats: Tensor, h: int, w: int) -> Tensor:
    "The sampling grid (n, h, w, 2) of the output->input matrices `mats` (n, 3, 3) for an output of h x w."
    mats = mats.float()
    n, dev = mats.shape[0], mats.device
    # Pixel centres in normalized coordinates (grid_sample's align_corners=False convention), then each output
    # coordinate as one broadcast of a per-column and a per-row term: several times faster on a CPU than
    # torch's affine_grid, whose batched matrix product has an inner dimension of 3.
    xs = ((torch.arange(w, device=dev, dtype=torch.float32) * 2 + 1) / w - 1).view(1, 1, w, 1)
    ys = ((torch.arange(h, device=dev, dtype=torch.float32) * 2 + 1) / h - 1).view(1, h, 1, 1)
    cols = mats.transpose(1, 2).reshape(n, 1, 1, 3, 3)   # cols[..., j, k]: the coefficient of input j in row k
    grid = xs * cols[..., 0, :2] + (ys * cols[..., 1, :2] + cols[..., 2, :2])
    # The third row divides for projective (warp) matrices; a CPU skips that for affine ones (on a GPU the
    # division is cheaper than the synchronization the check would cost).
    if dev.type != 'cpu' or not bool((mats[:, 2] == torch.tensor([0., 0., 1.])).all()):
        grid.mul_((xs * cols[..., 0, 2:] + (ys * cols[..., 1, 2:] + cols[..., 2, 2:])).reciprocal_())
    return grid


def _as_batch(v: Any, n: int, device: Any) -> Tensor:
    "A resolved parameter `v` (number or list of numbers) as a tensor of n rows."
    t = torch.as_tensor(v, dtype=torch.float32, device=device)
    return t.expand(n) if t.dim() == 0 else t.expand(n, *t.shape)


def _sample_batch(sampler: tuple, v: Sequence, n: int, device: Any) -> Tensor:
    "n random draws (each of `sampler`'s size) of a parameter given as the range `v`."
    kind, size = sampler
    shape = (n,) if size is None else (n, size)
    lo, hi = float(v[0]), float(v[1])
    if kind == 'uniform':
        return torch.empty(shape, device=device).uniform_(lo, hi)
    if kind == 'log_uniform':
        return torch.empty(shape, device=device).uniform_(math.log(lo), math.log(hi)).exp_()
    if kind == 'uniform_int':
        return torch.randint(int(lo), int(hi) + 1, shape, device=device).float()
    raise ValueError(f"Unknown sampler {kind!r}.")


def _sample_one(sampler: tuple, v: Sequence) -> Any:
    "One random draw of a parameter given as the range `v` (a list when the sampler has a size)."
    kind, size = sampler
    draw = {'uniform': lambda: random.uniform(v[0], v[1]), 'log_uniform': lambda: float(log_uniform(v[0], v[1])),
            'uniform_int': lambda: random.randint(int(v[0]), int(v[1]))}[kind]
    return draw() if size is None else [draw() for _ in range(size)]


def _params_of(t: RandTransform, n: int, device: Any, batch: bool) -> tuple[Tensor, dict]:
    "The run mask (n,) and the parameters (tensors of n rows) of `t`: drawn per image when `batch`, else resolved."
    if not batch:
        run = torch.full((n,), bool(t.do_run), device=device)
        return run, {k: _as_batch(v, n, device) for k, v in t.resolved.items()}
    vals = {**t.tfm.params, **t.kwargs}
    res = {}
    for k, v in vals.items():
        s = t.tfm.samplers.get(k)
        if t.is_random and s is not None and is_listy(v):
            res[k] = _sample_batch(s, v, n, device)
        else:
            res[k] = _as_batch(v, n, device)
    run = torch.rand(n, device=device) < t.p if t.is_random else torch.ones(n, dtype=torch.bool, device=device)
    return run, res


def compose_geometry(tfms: Sequence[RandTransform], n: int, h: int, w: int, device: Any, batch: bool = False
                     ) -> tuple[Tensor | None, list]:
    """The output->input matrix (n, 3, 3) of the geometric transforms `tfms` and the grid functions to apply after.

    With `batch`, parameters are drawn per image (n images); otherwise the resolved ones are used (n = 1).
    Returns (None, []) when nothing runs.
    """
    mat, grid_fns = None, []
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    for t in tfms:
        if t.tfm.kind not in ('affine', 'coord'):
            continue
        if not batch and not t.do_run:
            continue
        run, p = _params_of(t, n, device, batch)
        if not bool(run.any()):
            continue
        if t.tfm.on_grid:
            grid_fns.append((t.tfm.func, run, p))
            continue
        m = t.tfm.func(**p).to(device=device, dtype=torch.float32)
        if m.dim() == 2:
            m = m.expand(n, 3, 3)
        if t.tfm.kind == 'affine' and h != w:
            # Matrices are written for square pixels: rescale the off-diagonal terms so a rotation stays a rotation.
            m = m.clone()
            m[:, 0, 1] *= h / w
            m[:, 1, 0] *= w / h
        m = torch.where(run[:, None, None], m, eye)
        mat = m if mat is None else mat @ m
    return mat, grid_fns


def _grid_of(mat: Tensor | None, grid_fns: list, n: int, h: int, w: int, device: Any) -> Tensor:
    grid = affine_grid(ifnone(mat, torch.eye(3, device=device).expand(n, 3, 3)), h, w)
    for func, run, p in grid_fns:
        moved = func(grid, **{k: v.view(-1, *([1] * 3)) if v.dim() == 1 else v for k, v in p.items()})
        grid = torch.where(run[:, None, None, None], moved, grid)
    return grid


def _move_points(pts: Tensor, mat: Tensor) -> Tensor:
    "Points `pts` (n, k, 2) in (x, y) normalized coordinates moved as the image moves under `mat` (n, 3, 3)."
    inv = torch.linalg.inv(mat.double()).float()
    hom = torch.cat([pts, torch.ones_like(pts[..., :1])], -1) @ inv.transpose(1, 2)
    return hom[..., :2] / hom[..., 2:3]


def apply_lighting(x: Tensor, tfms: Sequence[RandTransform], batch: bool = False) -> Tensor:
    "The float images `x` (n, c, h, w) in [0, 1] with the lighting transforms of `tfms` applied on their logits."
    todo = []
    for t in tfms:
        if t.tfm.kind != 'lighting' or (not batch and not t.do_run):
            continue
        run, p = _params_of(t, x.shape[0], x.device, batch)
        if bool(run.any()):
            todo.append((t.tfm.func, run, p))
    if not todo:
        return x
    # Lighting functions are usually affine on the logits (brightness adds, contrast multiplies): then all of
    # them fold into one scale and shift per image, and the pixels are touched once.
    n = x.shape[0]
    probe = torch.tensor([0., 1., 2.], device=x.device).view(1, 3, 1, 1)
    scale, shift = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
    for func, run, p in todo:
        out = func(probe, **{k: v.view(-1, 1, 1, 1) if v.dim() == 1 else v for k, v in p.items()})
        out = out.expand(n, 3, 1, 1).reshape(n, 3)
        if not torch.allclose(out[:, 2] - out[:, 1], out[:, 1] - out[:, 0], atol=1e-4):
            return _apply_lighting_slow(x, todo)
        slope = torch.where(run, out[:, 1] - out[:, 0], torch.ones_like(scale))
        icpt = torch.where(run, out[:, 0], torch.zeros_like(shift))
        scale, shift = slope * scale, slope * shift + icpt
    return torch.sigmoid(torch.logit(x, eps=1e-5) * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1))


def apply_lighting_uint8(x: Tensor, tfms: Sequence[RandTransform], batch: bool = False) -> Tensor:
    """The uint8 images `x` (n, c, h, w) as floats in [0, 1] with the lighting transforms of `tfms` applied: the
    transforms run on the 256 levels of each image and channel, and the pixels are looked up in that table."""
    n, c = x.shape[:2]
    levels = (torch.arange(256, device=x.device, dtype=torch.float32) / 255).expand(n, c, 1, 256)
    table = apply_lighting(levels, tfms, batch=batch)
    if table is levels:
        return x.float().div_(255)
    offsets = (torch.arange(n * c, device=x.device, dtype=torch.int32) * 256)[:, None]
    idx = x.reshape(n * c, -1).int().add_(offsets)
    return table.reshape(-1).index_select(0, idx.view(-1)).view(x.shape)


def _apply_lighting_slow(x: Tensor, todo: list) -> Tensor:
    "Lighting functions applied one by one on the logits (for functions that are not affine)."
    lx = torch.logit(x, eps=1e-5)
    for func, run, p in todo:
        moved = func(lx, **{k: v.view(-1, 1, 1, 1) if v.dim() == 1 else v for k, v in p.items()})
        lx = torch.where(run[:, None, None, None], moved, lx)
    return torch.sigmoid(lx)


def _resize_px(x: Tensor, h: int, w: int) -> Tensor:
    "The CHW pixels `x` resized to h x w, bilinear (antialiased, so downscaled images stay smooth); uint8 stays uint8."
    y = x[None] if x.dtype == torch.uint8 else x[None].float()
    return F.interpolate(y, size=(h, w), mode='bilinear', antialias=True, align_corners=False)[0]


def _crop_target(size: Any, mult: int | None) -> tuple[int, int]:
    h, w = tis2hw(size)
    if mult:
        h, w = int(math.ceil(h / mult) * mult), int(math.ceil(w / mult) * mult)
    return h, w


def _resize_target(h: int, w: int, target: tuple[int, int], method: ResizeMethod) -> tuple[int, int]:
    "The size to resize an h x w image to before cropping/padding it to `target` by `method`."
    th, tw = target
    if method == ResizeMethod.SQUISH:
        return th, tw
    if method == ResizeMethod.NO:
        return h, w
    ratio = max(th / h, tw / w) if method == ResizeMethod.CROP else min(th / h, tw / w)
    return max(1, round(h * ratio)), max(1, round(w * ratio))


def _pad_index(idx: Tensor, n: int, mode: str) -> tuple[Tensor, Tensor | None]:
    "Indices `idx` (possibly outside [0, n)) mapped inside by padding `mode`, and a keep-mask for 'zeros'."
    if mode == 'border':
        return idx.clamp(0, n - 1), None
    if mode == 'zeros':
        inside = (idx >= 0) & (idx < n)
        return idx.clamp(0, n - 1), inside
    if n == 1:
        return torch.zeros_like(idx), None
    period = 2 * (n - 1)  # 'reflection' about the edge pixels, repeated as often as needed
    i = idx.remainder(period)
    return torch.where(i >= n, period - i, i), None


# -------------------------------------------------------------------------------------------------------- items
class Image(ItemBase):
    """An image: `px` is a CHW float tensor in [0, 1].

    It may hold its pixels as uint8 (as opened by an ImageList): `px` converts on access, and `data` stays uint8
    only for items that the batch path will finish on the device (see `ImageDataBunch`).
    """

    def __init__(self, px: Tensor):
        self._px = px
        self._raw = False           # True: `data` gives the stored (uint8) pixels for the device-side batch transforms
        self.sample_kwargs = {}

    # The stored pixels. An image may hold them at a smaller size with an upsampling still to do (`_pending`, the
    # (h, w) it is to have: see `_resized_later`); reading `_px` does it, only `data` for the batch skips it.
    @property
    def _px(self) -> Tensor:
        d = self.__dict__
        if d.get('_pending') is not None:
            d['_stored'], d['_pending'] = _resize_px(d['_stored'], *d['_pending']), None
        return d['_stored']

    @_px.setter
    def _px(self, v: Tensor) -> None:
        self.__dict__['_stored'], self.__dict__['_pending'] = v, None

    # data and obj are the pixels (ItemBase stores attributes; an image computes them)
    @property
    def data(self) -> Tensor:
        """The pixels as they go in a batch (float in [0, 1]; uint8 for the device-side batch path, which also does
        an upsampling left pending for it)."""
        return self.__dict__['_stored'] if self._raw else self.px

    @classmethod
    def before_collate(cls, items: Sequence) -> None:
        """Called by `data_collate` on the images of a batch: their pending upsamplings are left to the batch transform
        only when all of them have one and share its source and target sizes; otherwise they are done here."""
        pending = [o for o in items if isinstance(o, Image) and o.__dict__.get('_pending') is not None]
        if not pending:
            return
        kinds = {(tuple(o.__dict__['_stored'].shape), o.__dict__['_pending']) for o in pending}
        if len(pending) < len(items) or len(kinds) > 1:
            for o in pending:
                o._px  # noqa: B018 (reading it does the upsampling)

    @property
    def obj(self) -> Image:
        return self

    @property
    def px(self) -> Tensor:
        "The pixels, a CHW float tensor in [0, 1]."
        return self._px.float().div_(255) if self._px.dtype == torch.uint8 else self._px

    @px.setter
    def px(self, v: Tensor) -> None:
        self._px = v

    @property
    def logit_px(self) -> Tensor:
        "The logits of the pixels (what lighting transforms change)."
        return torch.logit(self.px.clamp(1e-5, 1 - 1e-5))

    @logit_px.setter
    def logit_px(self, v: Tensor) -> None:
        self._px = torch.sigmoid(v)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__} {tuple(self.shape)}'

    def __str__(self) -> str:
        return repr(self)

    def _repr_png_(self) -> bytes:
        import io
        buf = io.BytesIO()
        self._to_pil().save(buf, format='png')
        return buf.getvalue()

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.__dict__['_stored'].shape[0], *self.size)

    @property
    def size(self) -> tuple[int, int]:
        "(height, width)."
        return self.__dict__.get('_pending') or tuple(self.__dict__['_stored'].shape[-2:])

    @property
    def device(self) -> torch.device:
        return self.__dict__['_stored'].device

    def clone(self) -> Image:
        "A copy of this image (pixels shared until changed: transforms never write in place)."
        res = self.__class__(self.__dict__['_stored'])
        res.__dict__['_pending'] = self.__dict__.get('_pending')
        res.sample_kwargs = dict(self.sample_kwargs)
        return res

    def set_sample(self, **kwargs: Any) -> Image:
        "Set the resampling arguments (`mode`, `padding_mode`) used by geometric transforms."
        self.sample_kwargs.update(kwargs)
        return self

    def refresh(self) -> Image:
        "Transforms are applied at once here: nothing pending."
        return self

    def _to_pil(self) -> PIL.Image.Image:
        a = self._px if self._px.dtype == torch.uint8 else (self.px.clamp(0, 1) * 255).round().byte()
        return PIL.Image.fromarray(image2np(a))

    def save(self, fn: PathOrStr) -> None:
        "Save the image to `fn` (format from the suffix), atomically."
        _save_pil(self._to_pil(), fn)

    # --- the stages of `apply_tfms`, one method each so that masks and points can do their own version
    _resize_mode = 'bilinear'

    def _resized(self, h: int, w: int) -> Image:
        if (h, w) == self.size:
            return self
        return self._new(_resize_px(self._px, h, w))

    def _resized_later(self, h: int, w: int) -> Image:
        """A copy that reports the size h x w but keeps the pixels as they are until read. The device-side batch
        transform does the upsampling of a batch of such images inside its one resampling (`grid_sample` samples
        the small source directly), instead of an interpolation per item and 16x the bytes between processes."""
        res = self.clone()
        res.__dict__['_pending'] = (h, w)
        return res

    def _new(self, px: Tensor) -> Image:
        res = self.clone()
        res._px = px
        return res

    def _crop_pad(self, h: int, w: int, row_pct: float = 0.5, col_pct: float = 0.5,
                  padding_mode: str = 'reflection') -> Image:
        "This image cropped or padded to h x w, the window placed at (`row_pct`, `col_pct`) of the free room."
        H, W = self.size
        if (H, W) == (h, w):
            return self
        top, left = int(round((H - h) * float(row_pct))), int(round((W - w) * float(col_pct)))
        if 0 <= top and top + h <= H and 0 <= left and left + w <= W:
            return self._new(self._px[:, top:top + h, left:left + w])
        rows, rkeep = _pad_index(torch.arange(h) + top, H, padding_mode)
        cols, ckeep = _pad_index(torch.arange(w) + left, W, padding_mode)
        y = self._px.index_select(1, rows).index_select(2, cols)
        if rkeep is not None:
            y = y * (rkeep[:, None] & ckeep[None, :]).to(y.dtype)
        return self._new(y)

    def _offsets(self, h: int, w: int, row_pct: float, col_pct: float) -> tuple[int, int]:
        H, W = self.size
        return int(round((H - h) * float(row_pct))), int(round((W - w) * float(col_pct)))

    def _warped(self, mat: Tensor | None, grid_fns: list, mode: str, padding_mode: str, remove_out: bool) -> Image:
        h, w = self.size
        grid = _grid_of(mat, grid_fns, 1, h, w, self._px.device)
        mode = 'nearest' if isinstance(self, ImageSegment) else mode
        y = F.grid_sample(self.px[None] if not isinstance(self, ImageSegment) else self._px[None].float(), grid,
                          mode=mode, padding_mode=padding_mode, align_corners=False)[0]
        return self._new(y if not isinstance(self, ImageSegment) else y.round().to(self._px.dtype))

    def _lit(self, tfms: Sequence[RandTransform]) -> Image:
        return self._new(apply_lighting(self.px[None], tfms)[0])

    def apply_tfms(self, tfms: TfmList, do_resolve: bool = True, xtra: dict | None = None, size: Any = None,
                   resize_method: ResizeMethod | None = None, mult: int | None = None,
                   padding_mode: str = 'reflection', mode: str = 'bilinear', remove_out: bool = True,
                   on_batch: bool = False, resize_on_batch: bool = False) -> Image:
        """A copy transformed by `tfms` (resolving their random parameters when `do_resolve`) and resized to `size`.

        `resize_method` (default CROP for an int `size`, SQUISH for a tuple) says how the aspect ratio is kept;
        `padding_mode` and `mode` are grid_sample's; `xtra` maps a transform to extra arguments; `mult` rounds
        the size up to a multiple. `on_batch` stops after resizing and the pixel/crop transforms, leaving the
        geometric and lighting ones to the device-side batch transform; with `resize_on_batch` too, an upsampling of
        a uint8 image (source no larger than `size`, same aspect ratio or SQUISH) is left to that transform as well.
        """
        tfms = sorted(listify(tfms), key=lambda o: (o.tfm.stage, o.tfm.order))
        xtra = ifnone(xtra, {})
        if not tfms and size is None:
            return self
        if do_resolve:
            for t in tfms:
                if not on_batch or t.tfm.stage == 1:   # the batch draws its own geometric/lighting parameters
                    t.resolve()
        x = self.clone().set_sample(padding_mode=padding_mode, mode=mode, remove_out=remove_out)
        has_crop = any(t.tfm.kind == 'crop' for t in tfms)
        target = None
        if size is not None:
            target = _crop_target(size, mult)
            method = ResizeMethod(ifnone(resize_method, ResizeMethod.SQUISH if is_listy(size) else ResizeMethod.CROP))
            hw = _resize_target(*x.size, target, method)
            later = on_batch and resize_on_batch and type(x) is Image and x._px.dtype == torch.uint8 and \
                hw == target != x.size and hw[0] >= x.size[0] and hw[1] >= x.size[1]
            x = x._resized_later(*hw) if later else x._resized(*hw)
            if not has_crop and x.size != target:
                x = x._crop_pad(*target, padding_mode=padding_mode)
        for t in tfms:
            if t.tfm.kind not in ('pixel', 'crop') or not t.do_run:
                continue
            if not t.use_on_y and isinstance(x, (ImageSegment, ImagePoints)):
                continue
            kw = {**t.resolved, **xtra.get(t.tfm, {})}
            if t.tfm.kind == 'crop':
                if target is not None:
                    kw['size'] = target
                if 'padding_mode' not in t.kwargs:   # a mode given to the transform itself wins
                    kw['padding_mode'] = padding_mode
            x = t.tfm.func(x, **kw)
        if on_batch:
            x._raw = True
            return x
        # Lighting before the resampling, as fastai v1 did it (and as the batch path does with its lookup table).
        x = x._lit(tfms)
        mat, grid_fns = compose_geometry(tfms, 1, *x.size, x.device)
        if mat is not None or grid_fns:
            x = x._warped(mat, grid_fns, mode, padding_mode, remove_out)
        return x

    # --- fastai v1's direct methods
    def lighting(self, func: Callable, *args: Any, **kwargs: Any) -> Image:
        "Apply the lighting function `func` (on the logits of the pixels) with `args`."
        self.logit_px = func(self.logit_px, *args, **kwargs)
        return self

    def pixel(self, func: Callable, *args: Any, **kwargs: Any) -> Image:
        "Apply the pixel function `func` (item -> item) with `args`."
        res = func(self, *args, **kwargs)
        self._px = res._px
        return self

    def affine(self, func: Callable, *args: Any, **kwargs: Any) -> Image:
        "Resample the image through the matrix that `func(*args)` returns (output -> input coordinates)."
        mat = func(*[_as_batch(a, 1, 'cpu') for a in args], **{k: _as_batch(v, 1, 'cpu') for k, v in kwargs.items()})
        h, w = self.size
        mode = self.sample_kwargs.get('mode', 'bilinear')
        pm = self.sample_kwargs.get('padding_mode', 'reflection')
        self._px = self._warped(mat.float(), [], mode, pm, True)._px
        return self

    coord = affine

    # fastai v1 kept the pending geometry as a flow field and an affine matrix until `refresh()`. fastlib applies
    # each transform at once, so nothing is ever pending: the getters give the identity, and the setters
    # resample the item at once through what they are given.
    @property
    def flow(self) -> FlowField:
        "The sampling coordinates of the pixels, (h, w, 2) in [-1, 1] and (x, y) order: the pixel centres."
        h, w = self.size
        return FlowField((h, w), affine_grid(torch.eye(3)[None], h, w)[0])

    @flow.setter
    def flow(self, v: FlowField) -> None:
        grid = v.flow.float().view(1, *v.flow.shape[-3:]).to(self._px.device)
        pm = self.sample_kwargs.get('padding_mode', 'reflection')
        if isinstance(self, ImageSegment):   # class codes: the nearest one, never a blend
            y = F.grid_sample(self._px[None].float(), grid, mode='nearest', padding_mode=pm, align_corners=False)
            self._px = y[0].round().to(self._px.dtype)
        else:
            mode = self.sample_kwargs.get('mode', 'bilinear')
            self._px = F.grid_sample(self.px[None], grid, mode=mode, padding_mode=pm, align_corners=False)[0]

    @property
    def affine_mat(self) -> Tensor:
        "The pending output->input matrix (3, 3): always the identity, as fastlib applies transforms at once."
        return torch.eye(3)

    @affine_mat.setter
    def affine_mat(self, v: Tensor) -> None:
        mode = self.sample_kwargs.get('mode', 'bilinear')
        pm = self.sample_kwargs.get('padding_mode', 'reflection')
        self.__dict__.update(self._warped(v.float().view(1, 3, 3), [], mode, pm, True).__dict__)

    def resize(self, size: int | Sequence[int]) -> Image:
        "Resize the image to `size` (an int, (h, w) or (c, h, w)), stretching it."
        self._px = self._resized(*tis2hw(size))._px
        return self

    def show(self, ax: Any = None, figsize: tuple = (3, 3), title: str | None = None, hide_axis: bool = True,
             cmap: str | None = None, y: Any = None, **kwargs: Any) -> Any:
        "Show the image on `ax` with `title`, and the target `y` over it when given."
        import matplotlib as mpl
        cmap = ifnone(cmap, mpl.rcParams['image.cmap'] if self.shape[0] == 1 else None)
        ax = show_image(self, ax=ax, hide_axis=hide_axis, cmap=cmap, figsize=figsize)
        if y is not None:
            y.show(ax=ax, **kwargs)
        if title is not None:
            ax.set_title(title)
        return ax


class ImageSegment(Image):
    "A segmentation mask: one channel of integer class codes. `data` is a long tensor (1, h, w)."

    @property
    def data(self) -> Tensor:
        return self._px if self._raw else self._px.long()

    @property
    def px(self) -> Tensor:
        return self._px

    @px.setter
    def px(self, v: Tensor) -> None:
        self._px = v

    def _resized(self, h: int, w: int) -> ImageSegment:
        if (h, w) == self.size:
            return self
        y = F.interpolate(self._px[None].float(), size=(h, w), mode='nearest-exact')[0]
        return self._new(y.to(self._px.dtype))

    def _lit(self, tfms: Sequence[RandTransform]) -> ImageSegment:
        return self

    def lighting(self, func: Callable, *args: Any, **kwargs: Any) -> ImageSegment:
        "Masks are not lit: returns the mask unchanged."
        return self

    def refresh(self) -> ImageSegment:
        return self

    def save(self, fn: PathOrStr) -> None:
        "Save the mask's codes to `fn` as an 8-bit grayscale image, atomically."
        _save_pil(PIL.Image.fromarray(image2np(self._px.to(torch.uint8))), fn)

    def reconstruct(self, t: Tensor) -> ImageSegment:
        return ImageSegment(t)

    def show(self, ax: Any = None, figsize: tuple = (3, 3), title: str | None = None, hide_axis: bool = True,
             cmap: str = 'tab20', alpha: float = 0.5, **kwargs: Any) -> Any:
        "Show the mask on `ax` in colours (`cmap`) with transparency `alpha`."
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        ax.imshow(image2np(self._px.float()), cmap=cmap, alpha=alpha, vmin=0, interpolation='nearest', **kwargs)
        if hide_axis:
            ax.axis('off')
        if title:
            ax.set_title(title)
        return ax


@register_safe_globals
class FlowField:
    "Points `flow` (n, 2) in (x, y) order for an image of `size` (h, w)."

    def __init__(self, size: tuple[int, int], flow: Tensor):
        self.size, self.flow = tuple(size), flow


def scale_flow(flow: FlowField, to_unit: bool = True) -> FlowField:
    "`flow` with its pixel coordinates scaled to [-1, 1] (`to_unit`) or back."
    h, w = flow.size
    s = torch.tensor([w / 2, h / 2], dtype=torch.float32)
    flow.flow = flow.flow.float() / s - 1 if to_unit else (flow.flow + 1) * s
    return flow


class ImagePoints(Image):
    """Points on an image of size (h, w). `data` is (n, 2) in [-1, 1], (y, x) order when `y_first`.

    Given pixel coordinates (`scale=True`), a point (r, c) lies at distance r from the top edge: the centre of
    pixel (i, j) is (i + 0.5, j + 0.5).
    """

    def __init__(self, flow: FlowField, scale: bool = True, y_first: bool = True):
        flow = FlowField(flow.size, flow.flow.float().view(-1, 2))
        if y_first:
            flow.flow = flow.flow.flip(1)
        if scale:
            flow = scale_flow(flow)
        self._flow, self.y_first = flow, y_first
        self._raw = False
        self.sample_kwargs = {}

    @property
    def flow(self) -> FlowField:
        return self._flow

    @flow.setter
    def flow(self, v: FlowField) -> None:
        self._flow = v

    @property
    def data(self) -> Tensor:
        f = self._flow.flow
        return f.flip(1) if self.y_first else f

    @property
    def px(self) -> Tensor:
        raise AttributeError("ImagePoints have no pixels: use `.data` (coordinates) or `.flow`.")

    def __repr__(self) -> str:
        return f'{self.__class__.__name__} ({len(self._flow.flow)} points) {tuple(self.size)}'

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, *self._flow.size)

    @property
    def size(self) -> tuple[int, int]:
        return self._flow.size

    @size.setter
    def size(self, sz: Any) -> None:
        self._flow.size = tis2hw(sz)

    @property
    def device(self) -> torch.device:
        return self._flow.flow.device

    def clone(self) -> ImagePoints:
        res = self.__class__.__new__(self.__class__)
        res.__dict__.update(self.__dict__)
        res._flow = FlowField(self._flow.size, self._flow.flow.clone())
        res.sample_kwargs = dict(self.sample_kwargs)
        return res

    def _new_flow(self, flow: Tensor, size: tuple[int, int]) -> ImagePoints:
        res = self.clone()
        res._flow = FlowField(size, flow)
        return res

    def _resized(self, h: int, w: int) -> ImagePoints:
        return self._new_flow(self._flow.flow, (h, w))   # normalized coordinates do not change

    def _crop_pad(self, h: int, w: int, row_pct: float = 0.5, col_pct: float = 0.5,
                  padding_mode: str = 'reflection') -> ImagePoints:
        H, W = self.size
        top, left = self._offsets(h, w, row_pct, col_pct)
        f = self._flow.flow
        px_x, px_y = (f[:, 0] + 1) * W / 2 - left, (f[:, 1] + 1) * H / 2 - top
        return self._new_flow(torch.stack([px_x * 2 / w - 1, px_y * 2 / h - 1], 1), (h, w))

    def _warped(self, mat: Tensor | None, grid_fns: list, mode: str, padding_mode: str,
                remove_out: bool) -> ImagePoints:
        if mat is None:
            return self
        return self._new_flow(_move_points(self._flow.flow[None], mat)[0], self.size)

    def _lit(self, tfms: Sequence[RandTransform]) -> ImagePoints:
        return self

    def lighting(self, func: Callable, *args: Any, **kwargs: Any) -> ImagePoints:
        "Points are not lit: unchanged."
        return self

    def pixel(self, func: Callable, *args: Any, **kwargs: Any) -> ImagePoints:
        "Pixel functions apply to points when they know how (crops do); others leave points unchanged."
        return self

    def refresh(self) -> ImagePoints:
        return self

    def resize(self, size: Any) -> ImagePoints:
        self.size = size
        return self

    def affine(self, func: Callable, *args: Any, **kwargs: Any) -> ImagePoints:
        mat = func(*[_as_batch(a, 1, 'cpu') for a in args], **{k: _as_batch(v, 1, 'cpu') for k, v in kwargs.items()})
        self._flow = self._warped(mat.float(), [], 'bilinear', 'zeros', True)._flow
        return self

    coord = affine

    def show(self, ax: Any = None, figsize: tuple = (3, 3), title: str | None = None, hide_axis: bool = True,
             **kwargs: Any) -> Any:
        "Show the points on `ax` (in pixel coordinates)."
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        h, w = self.size
        f = self._flow.flow
        ax.scatter((f[:, 0] + 1) * w / 2 - 0.5, (f[:, 1] + 1) * h / 2 - 0.5, s=10, marker='.', c='r')
        if hide_axis:
            ax.axis('off')
        if title:
            ax.set_title(title)
        return ax


class ImageBBox(ImagePoints):
    "Bounding boxes of an image: `data` is (boxes (n, 4) as top, left, bottom, right in [-1, 1], labels (n,))."

    def __init__(self, flow: FlowField, scale: bool = True, y_first: bool = True, labels: Any = None,
                 classes: Sequence | None = None, pad_idx: int = 0):
        super().__init__(flow, scale=scale, y_first=y_first)
        self.pad_idx = pad_idx
        self.labels = None if labels is None else [o if isinstance(o, Category) else
                                                   Category(int(o), classes[int(o)] if classes else o) for o in labels]
        self.classes = classes

    @classmethod
    def create(cls, h: int, w: int, bboxes: Any, labels: Any = None, classes: Sequence | None = None,
               pad_idx: int = 0, scale: bool = True) -> ImageBBox:
        "Boxes `bboxes` ([top, left, bottom, right] in pixels) of an h x w image, labelled `labels` (indices)."
        b = torch.as_tensor(np.asarray(bboxes, dtype=np.float32)).view(-1, 4)
        corners = torch.stack([b[:, [0, 1]], b[:, [0, 3]], b[:, [2, 1]], b[:, [2, 3]]], 1)   # (n, 4, 2) y, x
        return cls(FlowField((h, w), corners.view(-1, 2)), scale=scale, y_first=True, labels=labels, classes=classes,
                   pad_idx=pad_idx)

    def _boxes(self) -> tuple[Tensor, Tensor]:
        "(boxes (n, 4), keep mask): each box the smallest one holding its moved corners, clipped to the image."
        f = self._flow.flow.view(-1, 4, 2)
        mins, maxs = f.min(1).values.clamp(-1, 1), f.max(1).values.clamp(-1, 1)
        boxes = torch.stack([mins[:, 1], mins[:, 0], maxs[:, 1], maxs[:, 0]], 1)
        keep = ((maxs - mins) > 0).all(1)
        return boxes, keep

    @property
    def data(self) -> tuple[Tensor, Tensor]:
        boxes, keep = self._boxes()
        labels = torch.tensor([int(o.data) for o in self.labels] if self.labels else [], dtype=torch.long)
        if self.sample_kwargs.get('remove_out', True) and len(labels) == len(keep):
            boxes, labels = boxes[keep], labels[keep]
        return boxes, labels

    def __repr__(self) -> str:
        return f'ImageBBox ({len(self._flow.flow) // 4} boxes) {tuple(self.size)}'

    def clone(self) -> ImageBBox:
        return super().clone()

    def show(self, y: Any = None, ax: Any = None, figsize: tuple = (3, 3), title: str | None = None,
             hide_axis: bool = True, color: str = 'white', **kwargs: Any) -> Any:
        "Draw the boxes (and their labels) on `ax`."
        import matplotlib.patches as patches
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        h, w = self.size
        boxes, labels = self.data
        for i, b in enumerate(boxes):
            top, left = (b[0] + 1) * h / 2 - 0.5, (b[1] + 1) * w / 2 - 0.5
            bh, bw = (b[2] - b[0]) * h / 2, (b[3] - b[1]) * w / 2
            ax.add_patch(patches.Rectangle((left, top), bw, bh, fill=False, edgecolor=color, lw=2))
            if self.classes is not None and i < len(labels) and int(labels[i]) != self.pad_idx:
                ax.text(left, top, str(self.classes[int(labels[i])]), color=color, fontsize=8, va='top')
        if hide_axis:
            ax.axis('off')
        if title:
            ax.set_title(title)
        return ax


# --------------------------------------------------------------------------------------------------- transforms
@register_safe_globals
class Transform:
    """A transform made from the function `func`, of one kind (its class): affine, coord, pixel, crop or lighting.

    Calling it with parameters gives a `RandTransform` (`rotate(degrees=(-10, 10), p=0.75)`): a range for a
    parameter that has a sampler is drawn anew for each item (or each image of a batch). Calling it with an
    item first applies it at once (`rotate(img, 30)`).
    """
    kind = 'pixel'
    order = 10
    stage = 1

    def __init__(self, func: Callable, order: int | None = None, samplers: dict | None = None,
                 use_on_y: bool = True):
        self.func = func
        self.order = ifnone(order, type(self).order)
        self.samplers = {k: (v if isinstance(v, tuple) else (v, None)) for k, v in ifnone(samplers, {}).items()}
        params = list(inspect.signature(func).parameters.values())
        self.on_grid = bool(params) and params[0].name == 'grid'
        takes_input = bool(params) and params[0].name in ('x', 'grid')
        self.params = {p.name: p.default for p in params[int(takes_input):] if p.default is not inspect.Parameter.empty}
        self.use_on_y = use_on_y
        self.__name__ = func.__name__.lstrip('_')

    def __repr__(self) -> str:
        return f'{self.__class__.__name__} ({self.__name__})'

    def __call__(self, *args: Any, p: float = 1., is_random: bool = True, use_on_y: bool | None = None,
                 **kwargs: Any) -> Any:
        if args:
            return self.calc(*args, **kwargs)
        return RandTransform(self, kwargs=kwargs, p=p, is_random=is_random, use_on_y=ifnone(use_on_y, self.use_on_y))

    def calc(self, x: Image, *args: Any, **kwargs: Any) -> Image:
        "Apply this transform to the item `x` at once, with the parameters `args`/`kwargs`."
        names = [n for n in self.params]
        kw = {**dict(zip(names, args)), **kwargs}
        return x.apply_tfms([RandTransform(self, kwargs=kw, is_random=False)])

    @property
    def name(self) -> str:
        return self.__name__


@register_safe_globals
class TfmAffine(Transform):
    "An affine transform: `func(**params)` returns (n, 3, 3) output->input matrices."
    kind, order, stage = 'affine', 5, 2


@register_safe_globals
class TfmCoord(Transform):
    "A coordinate transform: a (n, 3, 3) projective matrix from `func(**params)`, or `func(grid, ...)` moving a grid."
    kind, order, stage = 'coord', 4, 2


@register_safe_globals
class TfmPixel(Transform):
    "A pixel transform: `func(x, **params)` returns the transformed item (run per item, in the loader's workers)."
    kind, order, stage = 'pixel', 10, 1


@register_safe_globals
class TfmCrop(TfmPixel):
    "A crop/pad transform: gets the target `size` and `padding_mode` of `apply_tfms`."
    kind, order, stage = 'crop', 99, 1


@register_safe_globals
class TfmLighting(Transform):
    "A lighting transform: `func(logit_x, **params)` on the logits of the pixels (images only)."
    kind, order, stage = 'lighting', 8, 3

    def __init__(self, func: Callable, order: int | None = None, samplers: dict | None = None,
                 use_on_y: bool = False):
        super().__init__(func, order, samplers, use_on_y)


@register_safe_globals
class RandTransform:
    "The transform `tfm` with parameters `kwargs` (ranges are drawn by `resolve`), run with probability `p`."

    def __init__(self, tfm: Transform, kwargs: dict, p: float = 1.0, resolved: dict | None = None,
                 do_run: bool = True, is_random: bool = True, use_on_y: bool = True):
        self.tfm, self.kwargs, self.p = tfm, dict(kwargs), p
        self.resolved = ifnone(resolved, {})
        self.do_run, self.is_random, self.use_on_y = do_run, is_random, use_on_y
        unknown = set(self.kwargs) - set(tfm.params)
        if unknown:
            raise TypeError(f"{tfm.name} has no parameter {sorted(unknown)[0]!r}; its parameters are "
                            f"{list(tfm.params)}.")

    def __repr__(self) -> str:
        return f'RandTransform(tfm={self.tfm.name}, kwargs={self.kwargs}, p={self.p})'

    def resolve(self) -> None:
        "Draw the random parameters (ranges given for parameters with a sampler) and whether it runs this time."
        vals = {**self.tfm.params, **self.kwargs}
        if not self.is_random:
            self.resolved, self.do_run = vals, True
            return
        self.resolved = {k: (_sample_one(self.tfm.samplers[k], v) if k in self.tfm.samplers and is_listy(v) else v)
                         for k, v in vals.items()}
        self.do_run = random.random() < self.p

    @property
    def order(self) -> int:
        return self.tfm.order

    def __call__(self, x: Image, *args: Any, **kwargs: Any) -> Image:
        "Apply to `x` with the resolved parameters (when it runs)."
        if not self.do_run:
            return x
        return x.apply_tfms([RandTransform(self.tfm, {**self.resolved, **kwargs}, is_random=False)])


# ------------------------------------------------------------------------------------------------------ showing
def plot_flat(r: int, c: int, figsize: tuple) -> Any:
    "A figure of `r` x `c` axes of `figsize`, returned as a flat iterator of axes."
    import matplotlib.pyplot as plt
    return iter(plt.subplots(r, c, figsize=figsize, squeeze=False)[1].flatten())


def plot_multi(func: Callable, r: int = 1, c: int = 1, figsize: tuple = (12, 6)) -> Any:
    "Call `func(i, j, ax)` on each axis of an `r` x `c` grid of `figsize`."
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(r, c, figsize=figsize, squeeze=False)
    for i in range(r):
        for j in range(c):
            func(i, j, axes[i, j])
    return fig


def show_multi(func: Callable, r: int = 1, c: int = 1, figsize: tuple = (9, 9)) -> Any:
    "Show the image `func(i, j)` on each axis of an `r` x `c` grid."
    return plot_multi(lambda i, j, ax: func(i, j).show(ax=ax), r, c, figsize=figsize)


def show_all(imgs: Sequence[Image], r: int = 1, c: int | None = None, figsize: tuple = (12, 6)) -> Any:
    "Show the images `imgs` on `r` rows (and `c` columns, default enough for all)."
    c = ifnone(c, int(math.ceil(len(imgs) / r)))
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(r, c, figsize=figsize, squeeze=False)
    for img, ax in zip(imgs, axes.flatten()):
        img.show(ax=ax)
    for ax in axes.flatten()[len(imgs):]:
        ax.axis('off')
    return fig
