"""Matrix products: matmul (1-D, 2-D, batched with broadcasting), dot, outer, einsum."""
from .. import _C
from ..autograd.function import Function
from ._util import Tensor, binary_operands, tensor_method, tsum


class MatMul(Function):
    """a @ b for a, b with ndim >= 2 (batch dims broadcast; the engine sums
    gradients back over broadcast batch dims)."""

    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _C.matmul(a._data, b._data)

    def vjp(ctx, g):
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (g @ b.mT if na else None), (a.mT @ g if nb else None)

    def jvp(ctx, ta, tb):
        a, b = ctx.saved_tensors
        return tsum(None if ta is None else ta @ b, None if tb is None else a @ tb)


@tensor_method
def matmul(input, other):
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("matmul: both arguments must be Tensors")
    a, b = binary_operands(input, other, "matmul")
    na, nb = a._data.ndim, b._data.ndim
    if na >= 2 and nb >= 2:  # the common case first: this runs per layer and per vjp
        return MatMul.apply(a, b)
    if na == 0 or nb == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes {list(a.shape)} and "
                         f"{list(b.shape)}")
    if a.ndim == 1 and b.ndim == 1:
        if a.shape != b.shape:
            raise ValueError(f"matmul: 1-D tensors must have the same size, got {a.shape[0]} and {b.shape[0]}")
        return MatMul.apply(a.unsqueeze(0), b.unsqueeze(1)).reshape(())
    if a.ndim == 1:
        return MatMul.apply(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return MatMul.apply(a, b.unsqueeze(1)).squeeze(-1)
    return MatMul.apply(a, b)


Tensor.__matmul__ = Tensor.matmul  # the method itself, not the TypeError wrapper: `@` runs per layer and per vjp
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
mm = matmul
bmm = matmul
Tensor.mm = matmul
Tensor.bmm = matmul


@tensor_method
def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise ValueError(f"dot: 1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape != other.shape:
        raise ValueError(f"dot: inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
                         f"[{other.shape[0]}] to have the same number of elements")
    return matmul(input, other)


@tensor_method
def outer(input, vec2):
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: 1D tensors expected, got {input.ndim}D and {vec2.ndim}D")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


ger = outer


def einsum(equation, *operands):
    """Einstein summation, lowered to permute/reshape + broadcasting multiply and
    sum, with a matmul for two-operand contractions."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise NotImplementedError("einsum: '...' is not supported yet")
    if "->" in eq:
        lhs, out = eq.split("->")
    else:
        lhs = eq
        counts = {}
        for c in lhs.replace(",", ""):
            counts[c] = counts.get(c, 0) + 1
        out = "".join(sorted(c for c, n in counts.items() if n == 1))
    terms = lhs.split(",")
    for c in out:
        if c not in lhs:
            raise ValueError(f"einsum: output subscript '{c}' in '{equation}' does not appear in any input")
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscripts of '{equation}' repeat a letter")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: equation has {len(terms)} operands but {len(operands)} were given")
    for op in operands:
        if not isinstance(op, Tensor):
            raise TypeError(f"einsum: expected Tensor operands, got {type(op).__name__}")
    sizes = {}
    for term, op in zip(terms, operands):
        if len(term) != op.ndim:
            raise ValueError(f"einsum: operand with shape {list(op.shape)} does not match subscripts '{term}'")
        for c, n in zip(term, op.shape):
            if sizes.setdefault(c, n) != n and n != 1 and sizes[c] != 1:
                raise ValueError(f"einsum: size mismatch for subscript '{c}': {sizes[c]} vs {n}")
            sizes[c] = max(sizes[c], n)
    letters = list(out) + sorted(set("".join(terms)) - set(out))
    if len(operands) == 2:
        return _einsum_pair(terms, operands, out, sizes)
    # general: align every operand to `letters`, multiply, sum the contracted letters
    acc = None
    for term, op in zip(terms, operands):
        op = _diagonal_merge(term, op)
        term = "".join(dict.fromkeys(term))
        perm = [term.index(c) for c in letters if c in term]
        aligned = op.permute(*perm) if perm != list(range(len(perm))) else op
        aligned = aligned.reshape([op.shape[term.index(c)] if c in term else 1 for c in letters])
        acc = aligned if acc is None else acc * aligned
    if len(letters) > len(out):
        acc = acc.sum(dim=tuple(range(len(out), len(letters))))
    return acc.reshape([sizes[c] for c in out]) if out else acc.reshape(())


def _diagonal_merge(term, op):
    if len(set(term)) != len(term):
        raise NotImplementedError(f"einsum: repeated subscripts within one operand ('{term}') are not supported yet")
    return op


def _einsum_pair(terms, operands, out, sizes):
    (ta, tb), (a, b) = terms, operands
    a, b = _diagonal_merge(ta, a), _diagonal_merge(tb, b)
    batch = [c for c in ta if c in tb and c in out]
    contract = [c for c in ta if c in tb and c not in out]
    a_only = [c for c in ta if c not in tb]
    b_only = [c for c in tb if c not in ta]
    # letters in only one operand and not in the output are summed first
    a_sum = [c for c in a_only if c not in out]
    b_sum = [c for c in b_only if c not in out]
    if a_sum:
        a = a.sum(dim=tuple(ta.index(c) for c in a_sum))
        ta = "".join(c for c in ta if c not in a_sum)
    if b_sum:
        b = b.sum(dim=tuple(tb.index(c) for c in b_sum))
        tb = "".join(c for c in tb if c not in b_sum)
    a_only = [c for c in a_only if c not in a_sum]
    b_only = [c for c in b_only if c not in b_sum]

    def prod(cs):
        n = 1
        for c in cs:
            n *= sizes[c]
        return n

    a2 = a.permute(*[ta.index(c) for c in batch + a_only + contract]).reshape(
        [sizes[c] for c in batch] + [prod(a_only), prod(contract)])
    b2 = b.permute(*[tb.index(c) for c in batch + contract + b_only]).reshape(
        [sizes[c] for c in batch] + [prod(contract), prod(b_only)])
    r = matmul(a2, b2).reshape([sizes[c] for c in batch + a_only + b_only])
    order = batch + a_only + b_only
    return r.permute(*[order.index(c) for c in out]) if out else r.reshape(())
