// float16/bfloat16 accessors for targets where mlx-c's half.h defines no half types.
//
// mlx-c compiles mlx_array_{item,data}_{float16,bfloat16} only when half.h defines
// HAS_FLOAT16/HAS_BFLOAT16, which it does on aarch64 only. mlx-rs calls them on every target,
// so on x86_64 we provide them here with uint16_t storage: same size and alignment as the
// __fp16 / bfloat16 the Rust bindings declare (see bindgen_prelude.h), so the ABI matches.
#include <cstdint>
#include <cstring>
#include <exception>

#include "mlx/c/array.h"
#include "mlx/c/error.h"
#include "mlx/c/private/array.h"
#include "mlx/mlx.h"

extern "C" int mlx_array_item_float16(uint16_t* res, const mlx_array arr) {
  try {
    auto v = mlx_array_get_(arr).item<mlx::core::float16_t>();
    static_assert(sizeof(v) == sizeof(uint16_t));
    std::memcpy(res, &v, sizeof(uint16_t));
  } catch (std::exception& e) {
    mlx_error(e.what());
    return 1;
  }
  return 0;
}

extern "C" int mlx_array_item_bfloat16(uint16_t* res, const mlx_array arr) {
  try {
    auto v = mlx_array_get_(arr).item<mlx::core::bfloat16_t>();
    static_assert(sizeof(v) == sizeof(uint16_t));
    std::memcpy(res, &v, sizeof(uint16_t));
  } catch (std::exception& e) {
    mlx_error(e.what());
    return 1;
  }
  return 0;
}

extern "C" const uint16_t* mlx_array_data_float16(const mlx_array arr) {
  try {
    return reinterpret_cast<const uint16_t*>(
        mlx_array_get_(arr).data<mlx::core::float16_t>());
  } catch (std::exception& e) {
    mlx_error(e.what());
    return nullptr;
  }
}

extern "C" const uint16_t* mlx_array_data_bfloat16(const mlx_array arr) {
  try {
    return reinterpret_cast<const uint16_t*>(
        mlx_array_get_(arr).data<mlx::core::bfloat16_t>());
  } catch (std::exception& e) {
    mlx_error(e.what());
    return nullptr;
  }
}
