"""Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d: PyTorch's constructor
arguments, initialisation and state_dict names (weight, bias)."""
import math

from ... import dtypes
from ...ops import conv as _conv
from ...ops.creation import empty
from ...ops.shape import pad as _pad
from .. import init
from ..parameter import Parameter
from .module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """The parameters and checks the four layers share. weight is
    (out, in / groups, *kernel_size), or (in, out / groups, *kernel_size)
    when transposed."""

    _n = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", output_padding=0, device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._n
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _conv._ntuple(kernel_size, n, "kernel_size", name)
        self.stride = _conv._ntuple(stride, n, "stride", name)
        self.dilation = _conv._ntuple(dilation, n, "dilation", name)
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
            # validates the string (and 'same' with a stride) now, not at the first forward
            _conv.conv_padding(padding, self.kernel_size, self.stride, self.dilation, name)
            self.padding = padding
        else:
            self.padding = _conv._ntuple(padding, n, "padding", name)
        self.output_padding = _conv._ntuple(output_padding, n, "output_padding", name)
        self.groups, self.padding_mode = groups, padding_mode
        # torch's attribute: F.pad's order (last dim first) of the module's padding, for the non-zeros modes
        pads = ([v for x in self.padding for v in (x, x)] if self._transposed else
                _conv.conv_padding(self.padding, self.kernel_size, self.stride, self.dilation, name))
        rev = [p for i in reversed(range(n)) for p in pads[2 * i:2 * i + 2]]
        self._reversed_padding_repeated_twice = rev if isinstance(padding, str) else tuple(rev)  # as torch's
        dt = dtype or dtypes.default_float
        shape = ((in_channels, out_channels // groups) if self._transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dt))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # torch's init: kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the bias the same bound
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def _conv_forward(self, input, conv):
        """conv(input, padding) with the module's padding, or, for
        padding_mode reflect / replicate / circular, F.pad with that mode
        first and then conv with padding 0 (torch's semantics)."""
        if self.padding_mode == "zeros":
            return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = _pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
        return conv(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class Conv1d(_ConvNd):
    _n = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        return self._conv_forward(input, _conv.conv1d)


class Conv2d(_ConvNd):
    _n = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        return self._conv_forward(input, _conv.conv2d)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def _output_padding(self, input, output_size):
        """output_padding, or the one that gives output_size (torch's rule)."""
        if output_size is None:
            return self.output_padding
        name, n = type(self).__name__, self._n
        output_size = list(output_size)[-n:]
        if len(output_size) != n:
            raise ValueError(f"{name}: output_size must have {n} or {n + 2} elements, got {output_size}")
        spatial = input.shape[-n:]
        smallest = _conv.transposed_output_size(spatial, self.kernel_size, self.stride, self.padding, (0,) * n,
                                                self.dilation)
        pads = []
        for want, lo, s, d in zip(output_size, smallest, self.stride, self.dilation):
            if not lo <= want < lo + max(s, d):
                largest = [m + max(s, d) - 1 for m, s, d in zip(smallest, self.stride, self.dilation)]
                raise ValueError(f"{name}: requested an output size of {output_size}, but valid sizes range from "
                                 f"{smallest} to {largest} (for an input of shape {list(input.shape)})")
            pads.append(want - lo)
        return tuple(pads)


class ConvTranspose1d(_ConvTransposeNd):
    _n = 1

    def forward(self, input, output_size=None):
        return _conv.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                      self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    _n = 2

    def forward(self, input, output_size=None):
        return _conv.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                      self._output_padding(input, output_size), self.groups, self.dilation)
