"""Image transforms for data augmentation (torchvision.transforms names).

All act on fastgrad tensors laid out channels-first: one image `(C, H, W)`
(or `(H, W)`), or a batch `(N, C, H, W)`. Random choices come from
fastgrad's global generator, so `fg.manual_seed` makes them repeatable.

On a batch, every random transform draws independently per image: the
result is what applying torchvision's transform to each image before
batching would give. (torchvision itself, handed a 4-d tensor, makes one
draw for the whole batch; per-image draws are what augmentation wants, and
our DataLoader's fast path hands transforms whole batches.)
"""
import numbers

import numpy as np

__all__ = ["Compose", "Lambda", "ToTensor", "Normalize", "RandomHorizontalFlip", "RandomCrop", "GaussianNoise"]


def _fg():
    import fastgrad

    return fastgrad


def _check_image(x, op, min_ndim=2, max_ndim=4):
    from ..tensor import Tensor

    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a fastgrad Tensor, got {type(x).__name__}")
    if not min_ndim <= x.ndim <= max_ndim:
        raise ValueError(f"{op}: expected an image (C, H, W) / (H, W) or a batch (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")


def _is_batch(x):
    return x.ndim == 4


class Compose:
    """Applies `transforms` in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        body = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{body}\n])"


class Lambda:
    """Wraps a function as a transform."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"Lambda: expected a callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self):
        return f"Lambda({self.fn!r})"


class ToTensor:
    """A NumPy image (H, W), (H, W, C) or batch (N, H, W, C) -> a channels-first tensor.

    As torchvision's ToTensor: uint8 pixels are scaled to float32 in [0, 1];
    float32/float64 keep their dtype and values; other integer or bool arrays
    become float32 unscaled (fastgrad has no small integer dtypes).
    """

    def __call__(self, a):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"ToTensor: expected a numpy.ndarray, got {type(a).__name__}")
        if a.ndim == 2:
            a = a[None, :, :]
        elif a.ndim == 3:
            a = a.transpose(2, 0, 1)
        elif a.ndim == 4:
            a = a.transpose(0, 3, 1, 2)
        else:
            raise ValueError(f"ToTensor: expected an array (H, W), (H, W, C) or (N, H, W, C), got shape {a.shape}")
        if a.dtype == np.uint8:
            a = a.astype(np.float32) / np.float32(255)
        elif a.dtype not in (np.float32, np.float64):
            if a.dtype.kind not in "biu":
                raise TypeError(f"ToTensor: unsupported array dtype {a.dtype}")
            a = a.astype(np.float32)
        return _fg().tensor(np.ascontiguousarray(a))

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] per channel; the channel dim is -3 ((C,H,W) or (N,C,H,W))."""

    def __init__(self, mean, std, inplace=False):
        self.mean = [float(m) for m in (mean.tolist() if hasattr(mean, "tolist") else mean)]
        self.std = [float(s) for s in (std.tolist() if hasattr(std, "tolist") else std)]
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean has {len(self.mean)} values but std has {len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std evaluated to zero after conversion, leading to division by zero "
                             f"(std={self.std})")
        self.inplace = inplace

    def __call__(self, x):
        _check_image(x, "Normalize", min_ndim=3)
        if not x.dtype.is_floating_point:
            raise TypeError(f"Normalize: input tensor should be a float tensor, got {x.dtype.name}")
        c = x.shape[-3]
        if len(self.mean) not in (1, c):
            raise ValueError(f"Normalize: {len(self.mean)} mean/std values for an input with {c} channels "
                             f"(shape {tuple(x.shape)})")
        fg = _fg()
        mean = fg.tensor(self.mean, dtype=x.dtype).reshape(-1, 1, 1).to(x.device)
        std = fg.tensor(self.std, dtype=x.dtype).reshape(-1, 1, 1).to(x.device)
        if self.inplace:
            return x.sub_(mean).div_(std)
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomHorizontalFlip:
    """Mirrors the width (last) axis with probability `p`; per image on a batch."""

    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x):
        _check_image(x, "RandomHorizontalFlip")
        fg = _fg()
        if not _is_batch(x):
            return x.flip(-1) if fg.rand(1).item() < self.p else x
        n = x.shape[0]
        coin = (fg.rand(n) < self.p).to(x.device).reshape(n, 1, 1, 1)
        # one select over the batch instead of a Python loop over images
        return fg.where(coin, x.flip(-1), x)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def _pair(size, op):
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) != 2:
        raise ValueError(f"{op}: size must be an int or a pair (h, w), got {size}")
    return size


def _padding(padding):
    """torchvision's padding forms -> (left, right, top, bottom) for fg.pad on the last two dims."""
    if isinstance(padding, numbers.Integral):
        p = int(padding)
        return p, p, p, p
    padding = [int(p) for p in padding]
    if len(padding) == 1:
        return (padding[0],) * 4
    if len(padding) == 2:  # (left/right, top/bottom)
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:  # (left, top, right, bottom)
        return padding[0], padding[2], padding[1], padding[3]
    raise ValueError(f"RandomCrop: padding must be an int or a sequence of 1, 2 or 4 ints, got {padding}")


class RandomCrop:
    """Crops a random `size` window, after optional zero `padding` (torchvision's forms).

    `padding` is an int (all sides), (left/right, top/bottom) or
    (left, top, right, bottom); `pad_if_needed` pads images smaller than
    `size`; `fill` is the constant padding value. Offsets are drawn per image:
    on a batch of n, n tops then n lefts (fg.randint over the valid range) from
    fastgrad's generator, image k cut at (tops[k], lefts[k]) -- the crops a
    loop over the images would give; the batch is padded once and cut with
    one gather.
    """

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        self.size = _pair(size, "RandomCrop")
        if padding_mode != "constant":
            raise NotImplementedError(f"RandomCrop: only padding_mode='constant' is implemented, got "
                                      f"{padding_mode!r}")
        self.padding = None if padding is None else _padding(padding)
        if self.padding is not None and any(p < 0 for p in self.padding):
            raise ValueError(f"RandomCrop: padding must be non-negative, got {padding}")
        self.pad_if_needed = pad_if_needed
        self.fill = fill

    def __call__(self, x):
        _check_image(x, "RandomCrop")
        fg = _fg()
        th, tw = self.size
        if self.padding is not None and any(self.padding):
            x = fg.pad(x, list(self.padding), value=self.fill)
        h, w = x.shape[-2], x.shape[-1]
        if self.pad_if_needed and (h < th or w < tw):
            dh, dw = max(th - h, 0), max(tw - w, 0)
            # torchvision pads both sides by the missing amount
            x = fg.pad(x, [dw, dw, dh, dh], value=self.fill)
            h, w = x.shape[-2], x.shape[-1]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the (padded) input image "
                             f"size {(h, w)}")
        # The draws: n tops, then n lefts, from fastgrad's generator (n = 1
        # for one image); image k is cut at (tops[k], lefts[k]).
        n = x.shape[0] if _is_batch(x) else 1
        tops = fg.randint(0, h - th + 1, (n,))
        lefts = fg.randint(0, w - tw + 1, (n,))
        if not _is_batch(x):
            i, j = int(tops.item()), int(lefts.item())
            return x[..., i:i + th, j:j + tw]
        return _crop_batch(x, tops.to(x.device), lefts.to(x.device), th, tw)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


def _crop_batch(x, tops, lefts, th, tw):
    """x[k, :, tops[k]:tops[k] + th, lefts[k]:lefts[k] + tw] for every k, as one gather (no loop over images)."""
    fg = _fg()
    n, c, h, w = x.shape
    k = fg.arange(n).to(x.device)
    if x.requires_grad:  # advanced indexing: differentiable
        rows = (tops.reshape(n, 1) + fg.arange(th).to(x.device)).reshape(n, 1, th, 1)
        cols = (lefts.reshape(n, 1) + fg.arange(tw).to(x.device)).reshape(n, 1, 1, tw)
        return x[k.reshape(n, 1, 1, 1), fg.arange(c).to(x.device).reshape(1, c, 1, 1), rows, cols]
    # Every window of every image as one view (n, h - th + 1, w - tw + 1, c, th, tw);
    # indexing it by (k, top, left) copies whole windows, a strided row at a time.
    from .. import _C
    from ..tensor import Tensor

    a = x._data
    sn, sc, sh, sw = a.strides
    win = _C.as_strided(a, [n, h - th + 1, w - tw + 1, c, th, tw], [sn, sh, sw, sc, sh, sw], a.offset)
    return Tensor._wrap(win)[k, tops, lefts]


class GaussianNoise:
    """x + N(mean, std^2) noise, elementwise; `clip=True` clamps the result to [0, 1].

    torchvision.transforms.v2.GaussianNoise(mean, sigma, clip=True) clips by
    default because it assumes [0, 1] images; here clip defaults to False so
    the transform also works after Normalize.
    """

    def __init__(self, std=0.1, mean=0.0, clip=False):
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be non-negative, got {std}")
        self.std, self.mean, self.clip = float(std), float(mean), bool(clip)

    def __call__(self, x):
        _check_image(x, "GaussianNoise", min_ndim=0, max_ndim=float("inf"))
        if not x.dtype.is_floating_point:
            raise TypeError(f"GaussianNoise: input tensor should be a float tensor, got {x.dtype.name}")
        fg = _fg()
        noise = fg.randn(tuple(x.shape), dtype=x.dtype).to(x.device)
        out = x + (noise * self.std + self.mean)
        return out.clamp(0.0, 1.0) if self.clip else out

    def __repr__(self):
        return f"GaussianNoise(std={self.std}, mean={self.mean}, clip={self.clip})"
