// Arrays over memory MLX did not allocate: the shared, read-only mapping of the weights cache
// (crates/engine/src/weights_cache.rs). Every backend maps the same file, so the weights are
// in memory once per machine instead of once per connection.
//
// MLX's public ways to make an array from a pointer copy on the CPU (mlx_array_new_data_managed
// goes through allocator::make_buffer, which the CPU allocator does not implement, so it
// copies and runs the deleter at once). An array built on an allocator::Buffer with our own
// deleter does not copy. The CPU allocator's Buffer::raw_ptr() is the buffer pointer + 8 (a
// size word precedes each allocation), so the Buffer is made 8 bytes before the tensor: the
// cache file leaves those 8 bytes free before every tensor. Nothing reads or writes that word
// for an array whose deleter is not allocator::free. The result is checked (data() must be
// the tensor's address); if a different MLX build lays buffers out otherwise, this refuses
// and the caller copies instead.
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "mlx/c/array.h"
#include "mlx/c/private/array.h"
#include "mlx/mlx.h"

namespace mx = mlx::core;

extern "C" {

// res = float32 array of `shape` whose data is `data` (not copied). `release(owner)` runs
// once, when MLX frees the array's buffer (any thread). On failure `release` is not called
// and err says why.
int mck_external_f32(mlx_array* res, const float* data, const int* shape, int ndim, void* owner, void (*release)(void*),
                     char* err, size_t errlen) {
  auto fail = [&](const char* m) {
    if (err && errlen) std::snprintf(err, errlen, "%s", m);
    return 1;
  };
#if defined(__APPLE__)
  (void)data, (void)shape, (void)ndim, (void)owner, (void)release, (void)res;
  // Metal's allocator wraps host memory differently (page-aligned MTL buffers): untested, so
  // the engine copies there.
  return fail("zero-copy arrays are implemented for MLX's CPU allocator only");
#else
  try {
    if (!data || ndim < 0 || (shape == nullptr && ndim > 0)) return fail("external array: bad arguments");
    mx::Shape s(shape, shape + ndim);
    auto* base = const_cast<char*>(reinterpret_cast<const char*>(data)) - sizeof(size_t);
    // Until `armed` is set the caller keeps ownership (a refused array releases nothing).
    auto armed = std::make_shared<bool>(false);
    mx::array a(mx::allocator::Buffer(base), s, mx::float32, [owner, release, armed](mx::allocator::Buffer) {
      if (*armed) release(owner);
    });
    if (a.data<float>() != data) return fail("external array: this MLX build does not place data at buffer + 8");
    *armed = true;
    mlx_array_set_(*res, a);
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  } catch (...) {
    return fail("external array: unknown C++ exception");
  }
#endif
}
}
