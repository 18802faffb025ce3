// interop.h - zero-copy exchange with NumPy (and DLPack, below).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array.h"

namespace fg {

// A NumPy array viewing the same memory; it keeps the storage alive.
pybind11::array to_numpy(const Array& a);
// An Array viewing the NumPy array's memory; it keeps the NumPy array alive.
// Raises TypeError for dtypes fastgrad does not have.
Array from_numpy(const pybind11::array& a);

}  // namespace fg
