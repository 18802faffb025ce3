// errors.h - exception types the bindings translate to Python exceptions.
// std::invalid_argument -> ValueError, std::out_of_range -> IndexError,
// std::runtime_error -> RuntimeError (pybind11's defaults), and:
#pragma once
#include <stdexcept>
#include <string>

namespace fg {

// -> TypeError (wrong dtype or argument type).
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// -> MemoryError (an allocation the system refused), with a message that
// says how much was asked for.
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace fg
