"""Recurrent layers: RNNCell, LSTMCell, GRUCell and RNN, LSTM, GRU.

PyTorch's constructor arguments, forward signature, outputs, parameter names
and shapes (weight_ih_l{k}[_reverse], ...), gate order (LSTM: i, f, g, o;
GRU: r, z, n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))) and
initialisation (U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))), so a
state_dict loads across from torch in both directions and gives the same
outputs.

How a layer runs: the input projection of every time step is one matmul over
(T*B, in) with the biases folded in; then only h @ W_hh^T is left per step.
On the CPU the whole time loop of one layer and direction (forward and
backward through time) runs in one native call (_C.rnn_forward /
rnn_backward, csrc/cpu/rnn.cpp), because per-op Python overhead (~5 us) times
~15 ops per step would otherwise dominate at small sizes. The same recurrence
written in fastgrad ops (_step) serves the cells, other devices, forward mode
(jvp) and higher-order gradients (create_graph=True recomputes the layer with
it), so every path is differentiable again.

LSTM with proj_size > 0 (h_t = (o * tanh(c_t)) W_hr^T, h of size proj_size,
torch's weight_hr_l{k}[_reverse]): the native kernel has no projection, but
the recurrence only sees h_t through h_t W_hr^T W_hh^T, so on the CPU the
layer runs as a plain native LSTM with W_hh W_hr as its recurrent weight and
projects its outputs afterwards (_proj_fused); elsewhere the composite
path projects step by step.

A PackedSequence input (fg.nn.utils.rnn) is used as it is: its data holds
the steps time-major, sorted by decreasing length, so the running sequences
are always a prefix of the batch; each span of steps with the same number n
of running sequences is one layer call on an (steps, n) block of rows
(_run_packed), so the native kernel serves packed input too, h_n is each
sequence's last valid step, the reverse direction starts at each sequence's
own end, and nothing is padded.

Truncated back-propagation through time: carry the state between chunks with
h.detach() (and c.detach()).
"""
import math
import warnings

import numpy as np

from ... import _C
from ...autograd.function import Function
from ...autograd.grad_mode import state
from ...ops.creation import empty, zeros, zeros_like
from ...ops.index import index_select
from ...ops.shape import cat, stack
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_MODE_ID = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}  # csrc/cpu/rnn.h RnnMode

# The native whole-sequence path; tests switch it off to check the composite one.
use_fused = True


# ---------------------------------------------------------------------------------------------
# the recurrence in fastgrad ops


def _step(mode, xp, h, c, w_hh_t, b_hh, H, w_hr_t=None):
    """One time step. xp: (B, G*H) input projection with every bias that can
    be folded in (all but GRU's b_hh); h: (B, H) (or (B, P) for an LSTM
    with projection), c: (B, H); w_hh_t: W_hh^T (H or P, G*H); w_hr_t: the
    LSTM's projection W_hr^T (H, P) or None.
    Returns (h', c') (c' is None except for LSTM)."""
    if mode == "GRU":
        hh = h @ w_hh_t
        if b_hh is not None:
            hh = hh + b_hh
        rz = (xp[:, :2 * H] + hh[:, :2 * H]).sigmoid()
        r, z = rz[:, :H], rz[:, H:]
        n = (xp[:, 2 * H:] + r * hh[:, 2 * H:]).tanh()
        return n + z * (h - n), None  # = (1 - z) * n + z * h, as torch computes it
    pre = xp + h @ w_hh_t
    if mode == "LSTM":
        s = pre.sigmoid()  # one op for i, f, o (g's third is wasted, but ops cost more than flops here)
        g = pre[:, 2 * H:3 * H].tanh()
        c = s[:, H:2 * H] * c + s[:, :H] * g
        h = s[:, 3 * H:] * c.tanh()
        return (h if w_hr_t is None else h @ w_hr_t), c
    return (pre.tanh() if mode == "RNN_TANH" else pre.relu()), None


def _layer_composite(mode, reverse, xp, h0, w_hh, c0, b_hh, w_hr=None):
    """One layer and direction over xp (T, B, G*H) -> (y (T, B, H or P), h_T, c_T)."""
    H = w_hh.shape[0] // _GATES[mode]
    w_t = w_hh.t()
    w_hr_t = None if w_hr is None else w_hr.t()
    T = xp.shape[0]
    ys = [None] * T
    h, c = h0, c0
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h, c = _step(mode, xp[t], h, c, w_t, b_hh, H, w_hr_t)
        ys[t] = h
    return stack(ys, 0), h, c


def _packed_composite(mode, reverse, xp, h0, w_hh, c0=None, b_ih=None, b_hh=None):
    """The fused op's function in fastgrad ops: xp = x W_ih^T without bias;
    returns its flat [y | h_n | c_n]."""
    if b_ih is not None:
        xp = xp + (b_ih if mode == "GRU" else b_ih + b_hh)
    y, h, c = _layer_composite(mode, reverse, xp, h0, w_hh, c0, b_hh if mode == "GRU" else None)
    parts = [y.reshape(-1), h.reshape(-1)]
    if c is not None:
        parts.append(c.reshape(-1))
    return cat(parts, 0)


def _reset_uniform(module):
    """torch's RNN initialisation: every parameter uniform in +-1/sqrt(hidden_size)."""
    k = 1.0 / math.sqrt(module.hidden_size)
    for p in module.parameters():
        init.uniform_(p, -k, k)


# ---------------------------------------------------------------------------------------------
# the native whole-sequence op


class FusedRNNLayer(Function):
    """One layer and direction over a whole sequence in one native call.

    Inputs: xp (T, B, G*H) = x W_ih^T without bias (any strides on T and B),
    h0 (B, H), w_hh (G*H, H), then c0 (B, H) for LSTM, then b_ih and b_hh
    (G*H,) when the layer has biases (added in the native cell math: no pass
    over (T, B, G*H) for them). Output: flat [y (T, B, H) | h_n (B, H) |
    c_n (B, H)] (c_n for LSTM only), so one node carries all three (the tape
    has one output per node). The native forward keeps a workspace
    (activated gates, cell states, previous hiddens) for the native backward;
    with create_graph the vjp, and in forward mode the jvp, recompute the
    layer in fastgrad ops instead (_packed_composite).
    """

    def forward(ctx, xp, h0, w_hh, *rest, mode, reverse, has_c, has_bias):
        ctx.mode, ctx.reverse, ctx.has_c, ctx.has_bias = mode, reverse, has_c, has_bias
        c0 = rest[0]._data if has_c else None
        b_ih, b_hh = (rest[-2]._data, rest[-1]._data) if has_bias else (None, None)
        keep = state.grad_enabled and (xp._requires_grad or h0._requires_grad or w_hh._requires_grad
                                       or any(t._requires_grad for t in rest))
        out, ws = _C.rnn_forward(_MODE_ID[mode], xp._data, h0._data, c0, w_hh._data, b_ih, b_hh, reverse, keep)
        ctx.ws = ws
        ctx.save_for_backward(xp, h0, w_hh, *rest)
        return out

    def _recompute(ctx, xp, h0, w_hh, *rest):
        c0 = rest[0] if ctx.has_c else None
        b_ih, b_hh = (rest[-2], rest[-1]) if ctx.has_bias else (None, None)
        return _packed_composite(ctx.mode, ctx.reverse, xp, h0, w_hh, c0, b_ih, b_hh)

    def vjp(ctx, g):
        ins = ctx.saved_tensors
        if state.grad_enabled or state.forward_level or ctx.ws is None:  # (a running fg.jvp needs tangents)
            # create_graph: the gradient must itself be a graph of the inputs
            from ...autograd import enable_grad, grad

            wanted = [t for t, need in zip(ins, ctx.needs_input_grad) if need]
            with enable_grad():  # (a plain backward inside fg.jvp runs without grad mode)
                out = ctx._recompute(*ins)
            gs = iter(grad([out], wanted, [g], create_graph=True, allow_unused=True))
            return tuple(next(gs) if need else None for need in ctx.needs_input_grad)
        xp, h0, w_hh = ins[:3]
        c0 = ins[3]._data if ctx.has_c else None
        dxp, dh0, dc0, dw, dbi, dbh = _C.rnn_backward(_MODE_ID[ctx.mode], ctx.ws, g._data, h0._data, c0,
                                                      w_hh._data, ctx.has_bias, ctx.reverse)
        w = Tensor._wrap
        res = [w(dxp), w(dh0), w(dw)]
        if ctx.has_c:
            res.append(w(dc0))
        if ctx.has_bias:
            res += [w(dbi), w(dbh)]
        return tuple(r if need else None for r, need in zip(res, ctx.needs_input_grad))

    def jvp(ctx, *tangents):
        from ...autograd.functional import jvp

        prim = ctx.saved_tensors
        tans = [zeros_like(p) if t is None else t for p, t in zip(prim, tangents)]
        # the primals as saved (not detached): an enclosing jvp level's tangents, or a graph
        # (grad of jvp), must reach the recomputation
        return jvp(ctx._recompute, list(prim), tans)[1]

    def release(ctx):
        super().release()
        ctx.ws = None


def _fused_ok(x):
    return use_fused and x.device.type == "cpu" and hasattr(_C, "rnn_forward")


def _fused_layer(mode, reverse, x, batch_major, h0, w_ih, w_hh, c0, b_ih, b_hh):
    """FusedRNNLayer on x's projection; returns its output viewed as
    (T + 1 or T + 2, B, H): y's T steps, then h_n, then c_n (LSTM)."""
    xp = F.linear(x, w_ih)
    if batch_major:
        xp = xp.transpose(0, 1)
    extra = ([c0] if c0 is not None else []) + ([b_ih, b_hh] if b_ih is not None else [])
    out = FusedRNNLayer.apply(xp, h0, w_hh, *extra, mode=mode, reverse=reverse, has_c=c0 is not None,
                              has_bias=b_ih is not None)
    return out.view(-1, xp.shape[1], w_hh.shape[1])


def _run_layer(mode, reverse, x, batch_major, h0, w_ih, w_hh, c0, b_ih, b_hh, w_hr=None):
    """(y (T, B, H), h_n, c_n) of one layer and direction. x: (T, B, in), or
    (B, T, in) when batch_major: its projection is one (T*B, in) matmul in
    x's own layout either way. An LSTM projection (w_hr) goes through the
    native kernel as an unprojected LSTM (_proj_fused), or the composite
    path."""
    if w_hr is not None and _fused_ok(x) and h0.shape[0] > 0:
        xp = F.linear(x, w_ih)
        return _proj_fused(reverse, xp.transpose(0, 1) if batch_major else xp, h0, w_hh, c0, b_ih, b_hh, w_hr)
    if w_hr is None and _fused_ok(x) and h0.shape[0] > 0:
        v = _fused_layer(mode, reverse, x, batch_major, h0, w_ih, w_hh, c0, b_ih, b_hh)
        T = v.shape[0] - (2 if mode == "LSTM" else 1)
        return v[:T], v[T], (v[T + 1] if mode == "LSTM" else None)
    if b_ih is None:
        xp = F.linear(x, w_ih)
    else:
        xp = F.linear(x, w_ih, b_ih if mode == "GRU" else b_ih + b_hh)
    if batch_major:
        xp = xp.transpose(0, 1)
    return _layer_composite(mode, reverse, xp, h0, w_hh, c0, b_hh if mode == "GRU" else None, w_hr)


def _proj_fused(reverse, xp, h0, w_hh, c0, b_ih, b_hh, w_hr, w_eff=None):
    """An LSTM with projection through the native (projection-free) kernel.
    The recurrence only sees h_t through (h_t W_hr^T) W_hh^T = h_t (W_hh W_hr)^T,
    so the layer is a plain LSTM on the full h_t (B, H) with W_hh' = W_hh W_hr
    (G*H, H), whose outputs are projected once afterwards (one (T*B, H) x
    (H, P) matmul). The given h0 is projected already, so its term
    h0 W_hh^T goes into the first step's input projection and the kernel
    starts from h = 0. Exact algebra; only the rounding differs from the
    step-by-step projection (the composite path).
    xp: (T, B, G*H) = x W_ih^T without bias; w_eff: W_hh W_hr if the caller
    has it already."""
    T = xp.shape[0]
    first = T - 1 if reverse else 0  # the step that reads h0
    x0 = (xp[first] + h0 @ w_hh.t()).unsqueeze(0)
    if T > 1:
        xp = cat([xp[:T - 1], x0], 0) if reverse else cat([x0, xp[1:]], 0)
    else:
        xp = x0
    H = w_hr.shape[1]
    zero = zeros(h0.shape[0], H, dtype=h0.dtype, device=h0.device)
    extra = [c0] + ([b_ih, b_hh] if b_ih is not None else [])
    w = w_hh @ w_hr if w_eff is None else w_eff
    v = FusedRNNLayer.apply(xp, zero, w, *extra, mode="LSTM", reverse=reverse, has_c=True,
                            has_bias=b_ih is not None).view(-1, xp.shape[1], H)
    y = v[:T] @ w_hr.t()
    return y, y[0 if reverse else T - 1], v[T + 1]


def _run_packed(segments, mode, reverse, x, h0, w_ih, w_hh, c0, b_ih, b_hh, w_hr):
    """_run_layer for packed data x (N, in): the steps of sequences sorted
    by decreasing length, time-major, so the sequences running at any step
    are a prefix of the batch. segments: (t0, t1, n, r0, r1), the spans of
    steps where that prefix is n long, whose rows are x[r0:r1] (a (t1 - t0,
    n) block). Each span projects its own rows and is one layer call
    (slices of the narrow x rather than of its G*H-wide projection: every
    slice's gradient is as large as the whole until they are summed; this
    cut a 22-span LSTM step by a quarter): forward in time the rows that have ended drop
    out (their h, c are final), backward in time the rows that start join
    with their h0, c0. So every sequence sees exactly its own steps, T steps
    in all, and nothing is padded. Returns (y (N, H) packed like x, h_n
    (B, H), c_n)."""
    fused = _fused_ok(x)
    w_eff = None if w_hr is None or not fused else w_hh @ w_hr  # once per layer, not per span
    # the native op adds the biases itself
    bias = None if fused or b_ih is None else (b_ih if mode == "GRU" else b_ih + b_hh)
    GH = w_ih.shape[0]
    ys = []
    done_h, done_c = [], []  # forward: the final states of the rows that have ended, last rows first
    h = c = None
    for t0, t1, n, r0, r1 in (reversed(segments) if reverse else segments):
        if h is None:
            h, c = h0[:n], (None if c0 is None else c0[:n])
        elif n < h.shape[0]:  # forward: rows n.. ended at t0
            done_h.append(h[n:])
            done_c.append(None if c is None else c[n:])
            h, c = h[:n], (None if c is None else c[:n])
        elif n > h.shape[0]:  # reverse: rows h.shape[0]..n-1 start here, from their h0, c0
            k = h.shape[0]
            h = cat([h, h0[k:n]], 0)
            c = None if c is None else cat([c, c0[k:n]], 0)
        xs = F.linear(x[r0:r1], w_ih, bias).reshape(t1 - t0, n, GH)
        if fused and w_hr is not None:
            y, h, c = _proj_fused(reverse, xs, h, w_hh, c, b_ih, b_hh, w_hr, w_eff)
        elif fused:
            extra = ([c] if c is not None else []) + ([b_ih, b_hh] if b_ih is not None else [])
            v = FusedRNNLayer.apply(xs, h, w_hh, *extra, mode=mode, reverse=reverse, has_c=c is not None,
                                    has_bias=b_ih is not None).view(-1, n, w_hh.shape[1])
            T = t1 - t0
            y, h, c = v[:T], v[T], (v[T + 1] if c is not None else None)
        else:
            y, h, c = _layer_composite(mode, reverse, xs, h, w_hh, c, b_hh if mode == "GRU" else None, w_hr)
        ys.append(y.reshape(-1, y.shape[2]))
    if reverse:
        ys.reverse()
    y = ys[0] if len(ys) == 1 else cat(ys, 0)
    if done_h:
        h = cat([h] + done_h[::-1], 0)
        c = None if c is None else cat([c] + done_c[::-1], 0)
    return y, h, c


# ---------------------------------------------------------------------------------------------
# checks


def _check_hidden(name, hx, expected, what="hidden"):
    if not isinstance(hx, Tensor):
        raise TypeError(f"{name}: {what} state must be a Tensor, got {type(hx).__name__}")
    if tuple(hx.shape) != tuple(expected):
        raise RuntimeError(f"{name}: Expected {what} size {tuple(expected)}, got {list(hx.shape)}")


def _check_dtype(name, x, w):
    if x.dtype is not w.dtype:
        raise TypeError(f"{name}: input dtype {x.dtype.name} does not match the parameters' dtype {w.dtype.name}")


# ---------------------------------------------------------------------------------------------
# cells


class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__}: input_size and hidden_size must be positive, got "
                             f"input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        kw = {"dtype": dtype, "device": device}
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, **kw))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, **kw))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, **kw))
        else:
            self.bias_ih = None
            self.bias_hh = None
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prepare(self, input, hx, n_states):
        """Checks shapes; returns (x (B, I), states [(B, H)...], unbatched)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                             f"(shape {list(input.shape)})")
        _check_dtype(name, input, self.weight_ih)
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                               f"{self.input_size} (input shape {list(input.shape)})")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        B, H = x.shape[0], self.hidden_size
        if hx is None:
            states = [zeros(B, H, dtype=x.dtype, device=x.device) for _ in range(n_states)]
        else:
            hs = list(hx) if n_states > 1 else [hx]
            if n_states > 1 and len(hs) != n_states:
                raise ValueError(f"{name}: expected hx to be a tuple of {n_states} tensors, got {len(hs)}")
            states = []
            for what, s in zip(("hidden", "cell"), hs):
                if not isinstance(s, Tensor):
                    raise TypeError(f"{name}: {what} state must be a Tensor, got {type(s).__name__}")
                if s.ndim != input.ndim:
                    raise RuntimeError(f"{name}: Expected {what} state to be {input.ndim}D like the input "
                                       f"(shape {list(input.shape)}), got shape {list(s.shape)}")
                s = s.unsqueeze(0) if unbatched else s
                _check_hidden(name, s, (B, H), what)
                _check_dtype(name, s, self.weight_ih)
                states.append(s)
        return x, states, unbatched

    def _cell(self, x, h, c):
        """One step: (h', c') (c' None except for LSTM). On the CPU through
        the native layer op with T = 1 (6 ops instead of ~16: per-op
        overhead is what a cell stepped from Python pays for)."""
        mode, H = self._mode, self.hidden_size
        if _fused_ok(x) and x.shape[0] > 0:
            v = _fused_layer(mode, False, x.unsqueeze(0), False, h, self.weight_ih, self.weight_hh, c,
                             self.bias_ih, self.bias_hh)
            return v[1], (v[2] if mode == "LSTM" else None)
        if self.bias_ih is None:
            xp = F.linear(x, self.weight_ih)
        else:
            xp = F.linear(x, self.weight_ih, self.bias_ih if mode == "GRU" else self.bias_ih + self.bias_hh)
        return _step(mode, xp, h, c, self.weight_hh.t(), self.bias_hh if mode == "GRU" else None, H)


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity '{nonlinearity}' (expected 'tanh' or 'relu')")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def forward(self, input, hx=None):
        x, (h,), unbatched = self._prepare(input, hx, 1)
        h, _ = self._cell(x, h, None)
        return h.squeeze(0) if unbatched else h


class LSTMCell(RNNCellBase):
    """Gates i, f, g, o = split(x W_ih^T + b_ih + h W_hh^T + b_hh);
    c' = f * c + i * g, h' = o * tanh(c'). Returns (h', c')."""

    _mode = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        x, (h, c), unbatched = self._prepare(input, hx, 2)
        h, c = self._cell(x, h, c)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(RNNCellBase):
    """r, z = sigmoid(...), n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),
    h' = (1 - z) * n + z * h."""

    _mode = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        x, (h,), unbatched = self._prepare(input, hx, 1)
        h, _ = self._cell(x, h, None)
        return h.squeeze(0) if unbatched else h


# ---------------------------------------------------------------------------------------------
# multi-layer sequence modules


class RNNBase(Module):
    """The shared machinery of RNN, LSTM and GRU (see the module docstring).
    Input (T, B, input_size), or (B, T, input_size) with batch_first, or
    unbatched (T, input_size), or a PackedSequence (batch_first does not
    apply to it: its data is (sum of lengths, input_size))."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability "
                             f"of an element being zeroed, got {dropout}")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive integer, got {hidden_size}")
        if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size <= 0:
            raise ValueError(f"{name}: input_size must be a positive integer, got {input_size}")
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive integer, got {num_layers}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers=1")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool):
            raise TypeError(f"{name}: proj_size must be an int, got {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections "
                             f"(got {proj_size})")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size (got proj_size={proj_size}, "
                             f"hidden_size={hidden_size})")
        if proj_size > 0 and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        G = _GATES[mode]
        D = 2 if bidirectional else 1
        out_size = proj_size or hidden_size  # torch's real_hidden_size: what h holds
        kw = {"dtype": dtype, "device": device}
        self._flat_weights_names = []
        # torch's registration order (state_dict and parameters() order): w_ih, w_hh, b_ih, b_hh, w_hr
        for layer in range(num_layers):
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else out_size * D
                shapes = {"weight_ih": (G * hidden_size, in_size), "weight_hh": (G * hidden_size, out_size)}
                if bias:
                    shapes.update(bias_ih=(G * hidden_size,), bias_hh=(G * hidden_size,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for what, shape in shapes.items():
                    setattr(self, what + sfx, Parameter(empty(*shape, **kw)))
                    self._flat_weights_names.append(what + sfx)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_uniform(self)

    def flatten_parameters(self):
        """No-op (torch packs weights for cuDNN here); kept for compatibility."""

    @property
    def all_weights(self):
        D = 2 if self.bidirectional else 1
        per = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i * per:(i + 1) * per] for i in range(self.num_layers * D)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _check_input(self, input, ndims, what="input"):
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: {what} must be a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.ndim not in ndims:
            raise ValueError(f"{name}: Expected {what} to be {' or '.join(f'{n}D' for n in ndims)}, got "
                             f"{input.ndim}D input instead (shape {list(input.shape)})")
        _check_dtype(name, input, self.weight_ih_l0)
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]} ({what} shape {list(input.shape)})")

    def _hx(self, input, hx, n_states, B, batched):
        """Validates hx; returns [per-state (L*D, B, H)] (h is (L*D, B, P)
        with an LSTM projection)."""
        name = type(self).__name__
        D = 2 if self.bidirectional else 1
        expected = [(self.num_layers * D, B, self.proj_size or self.hidden_size),
                    (self.num_layers * D, B, self.hidden_size)][:n_states]
        if hx is None:
            return [zeros(*e, dtype=input.dtype, device=input.device) for e in expected]
        if n_states > 1:
            if not isinstance(hx, (tuple, list)) or len(hx) != n_states:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0) of two Tensors, got {type(hx).__name__}")
            hs = list(hx)
        else:
            if not isinstance(hx, Tensor):
                raise TypeError(f"{name}: hx must be a Tensor, got {type(hx).__name__}")
            hs = [hx]
        out = []
        for what, s, e in zip(("hidden", "cell"), hs, expected):
            if not isinstance(s, Tensor):
                raise TypeError(f"{name}: {what} state must be a Tensor, got {type(s).__name__}")
            want = 3 if batched else 2
            if s.ndim != want:
                raise RuntimeError(f"{name}: For {'batched 3-D' if batched else 'unbatched 2-D'} input "
                                   f"(shape {list(input.shape)}), hx should also be {want}-D but got "
                                   f"{s.ndim}-D tensor (shape {list(s.shape)})")
            s = s if batched else s.unsqueeze(1)
            _check_hidden(name, s, e, what)
            _check_dtype(name, s, self.weight_ih_l0)
            out.append(s)
        return out

    def _states(self, input, hx, n_states):
        """Validates input and hx; returns ([per-state (L*D, B, H)], B)."""
        name = type(self).__name__
        self._check_input(input, (2, 3))
        batched = input.ndim == 3
        if batched:
            B = input.shape[0] if self.batch_first else input.shape[1]
        else:
            B = 1
        T = input.shape[1] if batched and self.batch_first else input.shape[0]
        if T == 0:
            raise ValueError(f"{name}: Expected sequence length to be larger than 0 in RNN, got input of shape "
                             f"{list(input.shape)}")
        return self._hx(input, hx, n_states, B, batched), B

    def _layers(self, x, batch_major, states, n_states, segments=None):
        """Every layer and direction over x (layer 0 reads it in its own
        layout, batch_first included; every later layer's input is
        time-major). Returns (output (T, B, D*H), [h_n per layer/dir],
        [c_n ...]). segments: for packed data x (N, in), its spans of steps
        with the same number of running sequences (see _run_packed); the
        output is then packed too, (N, D*H)."""
        mode = self.mode
        D = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            ys = []
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih, w_hh = getattr(self, "weight_ih" + sfx), getattr(self, "weight_hh" + sfx)
                b_ih = b_hh = None
                if self.bias:
                    b_ih, b_hh = getattr(self, "bias_ih" + sfx), getattr(self, "bias_hh" + sfx)
                w_hr = getattr(self, "weight_hr" + sfx) if self.proj_size else None
                k = layer * D + d
                c0 = states[1][k] if n_states > 1 else None
                if segments is None:
                    y, h, c = _run_layer(mode, d == 1, x, batch_major, states[0][k], w_ih, w_hh, c0, b_ih, b_hh,
                                         w_hr)
                else:
                    y, h, c = _run_packed(segments, mode, d == 1, x, states[0][k], w_ih, w_hh, c0, b_ih, b_hh,
                                          w_hr)
                ys.append(y)
                h_n.append(h)
                c_n.append(c)
            x = ys[0] if D == 1 else cat(ys, ys[0].ndim - 1)
            batch_major = False
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, h_n, c_n

    def _forward(self, input, hx, n_states):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx, n_states)
        states, B = self._states(input, hx, n_states)
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        out, h_n, c_n = self._layers(x, batched and self.batch_first, states, n_states)
        h_n = stack(h_n, 0)
        c_n = stack(c_n, 0) if n_states > 1 else None
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (h_n if n_states == 1 else (h_n, c_n))

    def _forward_packed(self, input, hx, n_states):
        """PackedSequence in, PackedSequence out (see the module docstring).
        hx and the returned states are in the caller's batch order."""
        data, batch_sizes, sorted_indices, unsorted_indices = input
        self._check_input(data, (2,), "PackedSequence data")
        bs = np.asarray(batch_sizes.cpu(), dtype=np.int64)
        if bs.ndim != 1 or bs.size == 0 or (bs <= 0).any() or (np.diff(bs) > 0).any():
            raise ValueError(f"{type(self).__name__}: PackedSequence batch_sizes must be positive and non-increasing "
                             f"(build it with pack_padded_sequence), got {bs.tolist()}")
        T, B = bs.size, int(bs[0])
        if int(bs.sum()) != data.shape[0]:
            raise ValueError(f"{type(self).__name__}: PackedSequence data has {data.shape[0]} rows but its "
                             f"batch_sizes sum to {int(bs.sum())}")
        states = self._hx(data, hx, n_states, B, True)
        if sorted_indices is not None:
            states = [index_select(st, 1, sorted_indices) for st in states]
        starts = [0] + [t for t in range(1, T) if bs[t] != bs[t - 1]]
        offsets = np.concatenate([[0], np.cumsum(bs)])
        segments = [(t0, t1, int(bs[t0]), int(offsets[t0]), int(offsets[t1]))
                    for t0, t1 in zip(starts, starts[1:] + [T])]
        out, h_n, c_n = self._layers(data, False, states, n_states, segments)
        h_n = [stack(h_n, 0)] + ([stack(c_n, 0)] if n_states > 1 else [])
        if unsorted_indices is not None:
            h_n = [index_select(st, 1, unsorted_indices) for st in h_n]
        packed = PackedSequence(out, batch_sizes, sorted_indices, unsorted_indices)
        return packed, (h_n[0] if n_states == 1 else tuple(h_n))


def _no_proj(proj_size):
    if proj_size is not None:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).
    forward(input, hx=None) -> (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, proj_size=None):
        _no_proj(proj_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._forward(input, hx, 1)


class LSTM(RNNBase):
    """Long short-term memory. forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input, hx=None):
        return self._forward(input, hx, 2)


class GRU(RNNBase):
    """Gated recurrent unit. forward(input, hx=None) -> (output, h_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, proj_size=None):
        _no_proj(proj_size)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)

    def forward(self, input, hx=None):
        return self._forward(input, hx, 1)
