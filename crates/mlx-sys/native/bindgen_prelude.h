/* Parsed by bindgen before the mlx-c headers on targets other than aarch64.
 *
 * mlx-c's half.h defines float16_t/bfloat16_t (and HAS_FLOAT16/HAS_BFLOAT16) only on
 * aarch64, but mlx-rs expects the half-precision bindings on every target. Defining the
 * include guard skips half.h; the typedefs give bindgen `__BindgenFloat16(u16)` and
 * `bfloat16_t = u16`, which is what mlx-rs's utils/guard.rs uses. The C++ side of these
 * functions is native/half_shim.cpp. */
#define MLX_HALF_H
#define HAS_FLOAT16
#define HAS_BFLOAT16
#include <stdint.h>
typedef __fp16 float16_t;
typedef uint16_t bfloat16_t;
