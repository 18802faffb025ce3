// iter.h - the strided n-d loop under every elementwise kernel.
//
// NdLoop<N> describes N operands of the same (already broadcast) shape, each
// with its own byte strides. Dimensions are coalesced (merged where memory is
// contiguous across them, dropped where size 1) so a contiguous array becomes
// one flat loop. for_range() walks linear indices [begin, end) in row-major
// order and calls inner(ptrs, inner_strides, count) once per run along the
// innermost dimension: kernels write a tight loop there, with a fast path
// when every stride equals the item size.
#pragma once
#include <cstdint>
#include <vector>

#include "array.h"

namespace fg {

template <int N>
struct NdLoop {
  std::vector<int64_t> shape;                 // coalesced, innermost last; never empty
  std::vector<int64_t> strides[N];            // bytes
  char* base[N];

  // ops[i]: the i-th operand viewed at `shape_` (use expand() first for
  // broadcasting). Operand 0 is usually the output.
  NdLoop(const Shape& shape_, const Array* const* ops) {
    int nd = static_cast<int>(shape_.size());
    for (int k = 0; k < N; ++k) base[k] = ops[k]->raw();
    for (int d = 0; d < nd; ++d) {
      if (shape_[d] == 1) continue;
      bool merge = !shape.empty();
      if (merge)
        for (int k = 0; k < N; ++k) {
          int64_t s = ops[k]->strides[d] * static_cast<int64_t>(ops[k]->itemsize());
          if (strides[k].back() != s * shape_[d]) { merge = false; break; }
        }
      if (merge) {
        shape.back() *= shape_[d];
        for (int k = 0; k < N; ++k)
          strides[k].back() = ops[k]->strides[d] * static_cast<int64_t>(ops[k]->itemsize());
      } else {
        shape.push_back(shape_[d]);
        for (int k = 0; k < N; ++k)
          strides[k].push_back(ops[k]->strides[d] * static_cast<int64_t>(ops[k]->itemsize()));
      }
    }
    if (shape.empty()) {
      shape.push_back(1);
      for (int k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }

  template <class Inner>
  void for_range(int64_t begin, int64_t end, Inner&& inner) const {
    const int nd = static_cast<int>(shape.size());
    const int64_t inner_n = shape[nd - 1];
    std::vector<int64_t> idx(nd, 0);
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    char* p[N];
    int64_t inner_s[N];
    for (int k = 0; k < N; ++k) {
      p[k] = base[k];
      for (int d = 0; d < nd; ++d) p[k] += idx[d] * strides[k][d];
      inner_s[k] = strides[k][nd - 1];
    }
    int64_t i = begin;
    while (i < end) {
      int64_t run = inner_n - idx[nd - 1];
      if (run > end - i) run = end - i;
      inner(static_cast<char* const*>(p), static_cast<const int64_t*>(inner_s), run);
      i += run;
      if (i >= end) break;
      // advance to the start of the next row
      for (int k = 0; k < N; ++k) p[k] -= idx[nd - 1] * inner_s[k];
      idx[nd - 1] = 0;
      for (int d = nd - 2; d >= 0; --d) {
        ++idx[d];
        for (int k = 0; k < N; ++k) p[k] += strides[k][d];
        if (idx[d] < shape[d]) break;
        for (int k = 0; k < N; ++k) p[k] -= shape[d] * strides[k][d];
        idx[d] = 0;
      }
    }
  }
};

// Elements per parallel chunk for cheap elementwise work (keeps small ops on
// the calling thread, where the pool's wake-up would cost more than the op).
constexpr int64_t kElementwiseGrain = 32768;

}  // namespace fg
