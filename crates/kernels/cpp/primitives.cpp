// MLX custom primitives (MLX's documented extension mechanism, "Custom Extensions in MLX"):
// each op below builds an array whose primitive runs one of the loops of kernels.h in
// eval_cpu, on MLX's stream thread, inside MLX's lazy graph like any built-in op.
//
// The C API is what Rust calls (src/lib.rs). Nothing here throws across it: every entry
// point catches and returns a message. Shapes, dtypes and sizes are checked when the array
// is built, so eval_cpu itself has nothing left that can fail except allocation.
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/c/array.h"
#include "mlx/c/private/array.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"
#include "pool.h"

namespace mx = mlx::core;

namespace mck {
namespace {

enum class Op { Epilogue, LayerNorm, Depthwise, ConvSmall, Linear, Mlp, Attention };

// Everything an op needs besides its inputs; which fields count depends on the op.
struct Params {
  Op op;
  int act = kNone;
  float f = 0.0f;  // eps (LayerNorm)
  bool causal = false;
  // epilogue: which optional inputs are present, rows per scale row
  bool has_scale = false, has_bias = false, has_residual = false;
  size_t rows = 0, c = 0, rps = 1, lq = 1;
  // convolutions
  size_t n = 0, h = 0, w = 0, cin = 0, m = 1, cout = 0, k = 0, stride = 1, ho = 0, wo = 0;
  // linear: rows x k times k x cout; mlp: rows x c, hidden (in `cout`), threads it was sized for;
  // attention: n sequences of lq tokens, m heads of k floats
  size_t threads = 1;
};

const char* op_name(Op op) {
  switch (op) {
    case Op::Epilogue:
      return "mck_epilogue";
    case Op::LayerNorm:
      return "mck_layer_norm";
    case Op::Depthwise:
      return "mck_depthwise";
    case Op::ConvSmall:
      return "mck_conv_small";
    case Op::Linear:
      return "mck_linear";
    case Op::Mlp:
      return "mck_mlp";
    case Op::Attention:
      return "mck_attention";
  }
  return "mck";
}

class Kernel : public mx::UnaryPrimitive {
 public:
  Kernel(mx::Stream s, Params p) : mx::UnaryPrimitive(s), p_(p) {}

  void eval_cpu(const std::vector<mx::array>& inputs, mx::array& out) override {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cpu::get_command_encoder(stream());
    std::vector<const float*> in;
    for (const auto& a : inputs) {
      enc.set_input_array(a);
      in.push_back(a.data<float>());
    }
    enc.set_output_array(out);
    // Working memory (the MLP's hidden activations, attention's scores) from MLX's allocator,
    // given back when the task has run: counted in MLX's peak, reused through its buffer cache.
    Params p = p_;
    mx::allocator::Buffer scratch{nullptr};
    size_t floats = 0;
    if (p.op == Op::Mlp || p.op == Op::Attention) {
      p.threads = static_cast<size_t>(threads());
      floats = p.op == Op::Mlp ? mlp_scratch_floats(p.rows, p.c, p.cout, p.threads)
                               : p.threads * attention_scratch_floats(p.lq, p.k);
      scratch = mx::allocator::malloc(floats * sizeof(float));
      // (the engine reserved the room before the batch: runtime::reserve)
      if (!scratch.ptr()) throw std::runtime_error(std::string("mobileclip kernels: out of memory for ") + name());
    }
    // Raw pointers, as MLX's own CPU ops capture them: the graph keeps the buffers alive
    // until the stream has run the task.
    enc.dispatch([p, in = std::move(in), o = out.data<float>(), scratch]() mutable {
      run(p, in, o, scratch.ptr() ? static_cast<float*>(scratch.raw_ptr()) : nullptr);
      if (scratch.ptr()) mx::allocator::free(scratch);
    });
  }

  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("mobileclip kernels run on the CPU only (the engine uses MLX ops on the GPU)");
  }

  const char* name() const override { return op_name(p_.op); }

 private:
  static void run(const Params& p, const std::vector<const float*>& in, float* o, float* scratch) {
    switch (p.op) {
      case Op::Epilogue: {
        size_t i = 1;
        const float* s = p.has_scale ? in[i++] : nullptr;
        const float* b = p.has_bias ? in[i++] : nullptr;
        const float* r = p.has_residual ? in[i++] : nullptr;
        epilogue(in[0], s, b, r, o, p.rows, p.c, p.rps, p.act);
        break;
      }
      case Op::LayerNorm:
        layer_norm(in[0], in[1], in[2], p.f, o, p.rows, p.c);
        break;
      case Op::Depthwise:
        depthwise(in[0], in[1], p.has_bias ? in[2] : nullptr, o, p.n, p.h, p.w, p.cin, p.m, p.k, p.stride, p.ho, p.wo,
                  p.act);
        break;
      case Op::ConvSmall:
        conv_small(in[0], in[1], p.has_bias ? in[2] : nullptr, o, p.n, p.h, p.w, p.cin, p.cout, p.k, p.stride, p.ho,
                   p.wo, p.act);
        break;
      case Op::Linear: {
        size_t i = 2;
        const float* b = p.has_bias ? in[i++] : nullptr;
        const float* r = p.has_residual ? in[i++] : nullptr;
        linear(in[0], in[1], b, r, o, p.rows, p.k, p.cout, p.act);
        break;
      }
      case Op::Mlp:
        mlp(in[0], in[1], in[2], in[3], in[4], in[5], o, p.rows, p.c, p.cout, p.threads, scratch);
        break;
      case Op::Attention:
        attention(in[0], o, p.n, p.lq, p.m, p.k, p.causal, p.threads, scratch);
        break;
    }
  }

  Params p_;
};

struct Fail : std::exception {
  std::string msg;
  explicit Fail(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

std::string shape_str(const mx::array& a) {
  std::string s = "[";
  for (size_t i = 0; i < a.shape().size(); ++i) s += (i ? ", " : "") + std::to_string(a.shape()[i]);
  return s + "]";
}

// A float32, row-contiguous view of an input. mx::contiguous adds a node to the graph even
// for an array that already is one, and every node costs the calling thread graph work and
// the stream thread a task: so an input known to be row-contiguous when the graph is built
// goes in as it is: an evaluated one (the weights) whose flags say so, and the output of one
// of these kernels (always written row-contiguous).
mx::array prep(const mx::array& a, const char* what) {
  if (a.dtype() != mx::float32) throw Fail(std::string(what) + " must be float32");
  const bool contiguous = a.is_available() ? a.flags().row_contiguous
                                           : a.has_primitive() && dynamic_cast<const Kernel*>(&a.primitive()) != nullptr;
  return contiguous ? a : mx::contiguous(a);
}

void need(bool ok, const std::string& msg) {
  if (!ok) throw Fail(msg);
}

mx::Stream cpu_stream() {
  mx::Stream s = mx::default_stream(mx::default_device());
  need(s.device == mx::Device::cpu, "mobileclip kernels run on the CPU only");
  return s;
}

mx::array build(mx::Shape shape, Params p, std::vector<mx::array> inputs) {
  return mx::array(std::move(shape), mx::float32, std::make_shared<Kernel>(cpu_stream(), p), std::move(inputs));
}

bool present(mlx_array a) { return a.ctx != nullptr; }

// Runs `f` (which returns the result array) and converts any exception into a message.
template <class F>
int guarded(mlx_array* res, char* err, size_t errlen, F&& f) {
  try {
    mlx_array_set_(*res, f());
    return 0;
  } catch (const std::exception& e) {
    if (err && errlen) std::snprintf(err, errlen, "%s", e.what());
  } catch (...) {
    if (err && errlen) std::snprintf(err, errlen, "unknown C++ exception");
  }
  return 1;
}

size_t dim(const mx::array& a, int i) { return static_cast<size_t>(a.shape(i)); }

// A packed GEMM weight (kernels.h, kPanel) of k rows and n columns: [ceil(n / kPanel), k, kPanel].
void need_packed(const mx::array& w, size_t k, size_t n, const std::string& what) {
  need(w.ndim() == 3 && dim(w, 0) == (n + kPanel - 1) / kPanel && dim(w, 1) == k && dim(w, 2) == kPanel,
       what + " " + shape_str(w) + " is not a packed [" + std::to_string(k) + " x " + std::to_string(n) +
           "] weight ([ceil(N / " + std::to_string(kPanel) + "), K, " + std::to_string(kPanel) + "])");
}

}  // namespace
}  // namespace mck

using namespace mck;

extern "C" {

// out = act(y * scale + bias) + residual; y [..., C] (rows = product of leading dims),
// scale [S, C] with rows / S rows per scale row, bias [C], residual like y. Absent = null ctx.
int mck_epilogue(mlx_array* res, mlx_array y, mlx_array scale, mlx_array bias, mlx_array residual, int act, char* err,
                 size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array yv = prep(mlx_array_get_(y), "epilogue input");
    need(yv.ndim() >= 1 && yv.size() > 0, "epilogue: empty input " + shape_str(yv));
    Params p{Op::Epilogue};
    p.c = dim(yv, -1);
    p.rows = yv.size() / p.c;
    p.act = act;
    std::vector<mx::array> in{yv};
    if (present(scale)) {
      mx::array s = prep(mlx_array_get_(scale), "epilogue scale");
      need(s.ndim() == 2 && dim(s, 1) == p.c && dim(s, 0) > 0 && p.rows % dim(s, 0) == 0,
           "epilogue: scale " + shape_str(s) + " does not fit input " + shape_str(yv));
      p.has_scale = true;
      p.rps = p.rows / dim(s, 0);
      in.push_back(s);
    }
    if (present(bias)) {
      mx::array b = prep(mlx_array_get_(bias), "epilogue bias");
      need(b.ndim() == 1 && dim(b, 0) == p.c, "epilogue: bias " + shape_str(b) + " does not fit " + shape_str(yv));
      p.has_bias = true;
      in.push_back(b);
    }
    if (present(residual)) {
      mx::array r = prep(mlx_array_get_(residual), "epilogue residual");
      need(r.shape() == yv.shape(), "epilogue: residual " + shape_str(r) + " is not " + shape_str(yv));
      p.has_residual = true;
      in.push_back(r);
    }
    need(act == kNone || act == kGelu, "epilogue: unknown activation");
    return build(yv.shape(), p, std::move(in));
  });
}

int mck_layer_norm(mlx_array* res, mlx_array x, mlx_array w, mlx_array b, float eps, char* err, size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array xv = prep(mlx_array_get_(x), "layer_norm input");
    mx::array wv = prep(mlx_array_get_(w), "layer_norm weight");
    mx::array bv = prep(mlx_array_get_(b), "layer_norm bias");
    need(xv.ndim() >= 1 && xv.size() > 0, "layer_norm: empty input");
    Params p{Op::LayerNorm};
    p.c = dim(xv, -1);
    p.rows = xv.size() / p.c;
    p.f = eps;
    need(wv.ndim() == 1 && dim(wv, 0) == p.c && bv.ndim() == 1 && dim(bv, 0) == p.c,
         "layer_norm: weight " + shape_str(wv) + " / bias " + shape_str(bv) + " do not fit " + shape_str(xv));
    return build(xv.shape(), p, {xv, wv, bv});
  });
}

// Depthwise conv: x [N, H, W, C], w [k, k, C, m], bias [C*m] or absent -> [N, Ho, Wo, C*m].
int mck_depthwise(mlx_array* res, mlx_array x, mlx_array w, mlx_array bias, int stride, int act, char* err,
                  size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array xv = prep(mlx_array_get_(x), "depthwise input");
    mx::array wv = prep(mlx_array_get_(w), "depthwise weight");
    need(xv.ndim() == 4 && xv.size() > 0, "depthwise: input " + shape_str(xv) + " is not a non-empty NHWC map");
    need(wv.ndim() == 4 && wv.shape(0) == wv.shape(1) && wv.shape(0) % 2 == 1 && dim(wv, 2) == dim(xv, 3) &&
             wv.shape(3) >= 1,
         "depthwise: weight " + shape_str(wv) + " does not fit input " + shape_str(xv) + " (want [k, k, C, m], k odd)");
    need(stride >= 1, "depthwise: stride must be >= 1");
    need(act == kNone || act == kGelu, "depthwise: unknown activation");
    Params p{Op::Depthwise};
    p.n = dim(xv, 0), p.h = dim(xv, 1), p.w = dim(xv, 2), p.cin = dim(xv, 3);
    p.k = dim(wv, 0), p.m = dim(wv, 3), p.stride = static_cast<size_t>(stride), p.act = act;
    p.cout = p.cin * p.m;
    p.ho = (p.h + 2 * (p.k / 2) - p.k) / p.stride + 1;
    p.wo = (p.w + 2 * (p.k / 2) - p.k) / p.stride + 1;
    std::vector<mx::array> in{xv, wv};
    if (present(bias)) {
      mx::array bv = prep(mlx_array_get_(bias), "depthwise bias");
      need(bv.ndim() == 1 && dim(bv, 0) == p.cout, "depthwise: bias " + shape_str(bv) + " does not fit");
      p.has_bias = true;
      in.push_back(bv);
    }
    return build({static_cast<int>(p.n), static_cast<int>(p.ho), static_cast<int>(p.wo), static_cast<int>(p.cout)}, p,
                 std::move(in));
  });
}

// Dense conv for few input channels: x [N, H, W, Cin], w [k, k, Cin, O], bias [O] or absent.
int mck_conv_small(mlx_array* res, mlx_array x, mlx_array w, mlx_array bias, int stride, int act, char* err,
                   size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array xv = prep(mlx_array_get_(x), "conv input");
    mx::array wv = prep(mlx_array_get_(w), "conv weight");
    need(xv.ndim() == 4 && xv.size() > 0, "conv: input " + shape_str(xv) + " is not a non-empty NHWC map");
    need(wv.ndim() == 4 && wv.shape(0) == wv.shape(1) && wv.shape(0) % 2 == 1 && dim(wv, 2) == dim(xv, 3) &&
             wv.shape(3) >= 1,
         "conv: weight " + shape_str(wv) + " does not fit input " + shape_str(xv) + " (want [k, k, Cin, O], k odd)");
    need(stride >= 1, "conv: stride must be >= 1");
    need(act == kNone || act == kGelu, "conv: unknown activation");
    Params p{Op::ConvSmall};
    p.n = dim(xv, 0), p.h = dim(xv, 1), p.w = dim(xv, 2), p.cin = dim(xv, 3);
    p.k = dim(wv, 0), p.cout = dim(wv, 3), p.stride = static_cast<size_t>(stride), p.act = act;
    p.ho = (p.h + 2 * (p.k / 2) - p.k) / p.stride + 1;
    p.wo = (p.w + 2 * (p.k / 2) - p.k) / p.stride + 1;
    std::vector<mx::array> in{xv, wv};
    if (present(bias)) {
      mx::array bv = prep(mlx_array_get_(bias), "conv bias");
      need(bv.ndim() == 1 && dim(bv, 0) == p.cout, "conv: bias " + shape_str(bv) + " does not fit");
      p.has_bias = true;
      in.push_back(bv);
    }
    return build({static_cast<int>(p.n), static_cast<int>(p.ho), static_cast<int>(p.wo), static_cast<int>(p.cout)}, p,
                 std::move(in));
  });
}

// out = act(x w + bias) + residual: x [..., K], w packed (K x N), bias [N] or absent, residual
// [..., N] (x's leading dims) or absent.
int mck_linear(mlx_array* res, mlx_array x, mlx_array w, int n, mlx_array bias, mlx_array residual, int act,
               char* err, size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array xv = prep(mlx_array_get_(x), "linear input");
    mx::array wv = prep(mlx_array_get_(w), "linear weight");
    need(xv.ndim() >= 1 && xv.size() > 0, "linear: empty input " + shape_str(xv));
    need(n > 0, "linear: no output columns");
    need(act == kNone || act == kGelu, "linear: unknown activation");
    Params p{Op::Linear};
    p.k = dim(xv, -1), p.cout = static_cast<size_t>(n), p.rows = xv.size() / p.k, p.act = act;
    need_packed(wv, p.k, p.cout, "linear: weight");
    mx::Shape shape = xv.shape();
    shape.back() = n;
    std::vector<mx::array> in{xv, wv};
    if (present(bias)) {
      mx::array bv = prep(mlx_array_get_(bias), "linear bias");
      need(bv.ndim() == 1 && dim(bv, 0) == p.cout, "linear: bias " + shape_str(bv) + " does not fit N = " + std::to_string(n));
      p.has_bias = true;
      in.push_back(bv);
    }
    if (present(residual)) {
      mx::array rv = prep(mlx_array_get_(residual), "linear residual");
      need(rv.shape() == shape, "linear: residual " + shape_str(rv) + " is not the output's shape");
      p.has_residual = true;
      in.push_back(rv);
    }
    return build(std::move(shape), p, std::move(in));
  });
}

// out = x + (gelu(y w1 + b1) w2 + b2): y, x [..., C], w1 packed (C x H), b1 [H], w2 packed
// (H x C), b2 [C].
int mck_mlp(mlx_array* res, mlx_array y, mlx_array x, mlx_array w1, mlx_array b1, mlx_array w2, mlx_array b2,
            char* err, size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array yv = prep(mlx_array_get_(y), "mlp input");
    mx::array xv = prep(mlx_array_get_(x), "mlp residual");
    mx::array w1v = prep(mlx_array_get_(w1), "mlp fc1 weight");
    mx::array b1v = prep(mlx_array_get_(b1), "mlp fc1 bias");
    mx::array w2v = prep(mlx_array_get_(w2), "mlp fc2 weight");
    mx::array b2v = prep(mlx_array_get_(b2), "mlp fc2 bias");
    need(yv.ndim() >= 1 && yv.size() > 0 && xv.shape() == yv.shape(),
         "mlp: input " + shape_str(yv) + " and residual " + shape_str(xv) + " differ or are empty");
    Params p{Op::Mlp};
    p.c = dim(yv, -1), p.rows = yv.size() / p.c;
    need(b1v.ndim() == 1 && b1v.size() > 0, "mlp: fc1 bias " + shape_str(b1v) + " is not [H]");
    p.cout = dim(b1v, 0);
    need(b2v.ndim() == 1 && dim(b2v, 0) == p.c, "mlp: fc2 bias " + shape_str(b2v) + " is not [C]");
    need_packed(w1v, p.c, p.cout, "mlp: fc1 weight");
    need_packed(w2v, p.cout, p.c, "mlp: fc2 weight");
    return build(yv.shape(), p, {yv, xv, w1v, b1v, w2v, b2v});
  });
}

// Multi-head self-attention: qkv [B, L, 3 W] (q, k, v of `heads` heads of W / heads each)
// -> [B, L, W], softmax(q k^T / sqrt(W / heads)) v; causal: token i sees tokens 0 ..= i.
int mck_attention(mlx_array* res, mlx_array qkv, int heads, int causal, char* err, size_t errlen) {
  return guarded(res, err, errlen, [&] {
    mx::array xv = prep(mlx_array_get_(qkv), "attention input");
    need(xv.ndim() == 3 && xv.size() > 0, "attention: input " + shape_str(xv) + " is not a non-empty [B, L, 3 W]");
    need(heads > 0, "attention: heads must be > 0");
    const size_t w3 = dim(xv, 2), h = static_cast<size_t>(heads);
    need(w3 % (3 * h) == 0,
         "attention: input width " + std::to_string(w3) + " is not 3 x " + std::to_string(heads) + " heads");
    Params p{Op::Attention};
    p.n = dim(xv, 0), p.lq = dim(xv, 1), p.m = h, p.k = w3 / (3 * h), p.causal = causal != 0;
    return build({xv.shape(0), xv.shape(1), static_cast<int>(w3 / 3)}, p, {xv});
  });
}

size_t mck_attention_scratch_floats(size_t l, size_t d) { return mck::attention_scratch_floats(l, d); }

size_t mck_mlp_scratch_floats(size_t m, size_t c, size_t hidden, size_t threads) {
  return mck::mlp_scratch_floats(m, c, hidden, threads);
}
void mck_set_threads(int n) { mck::set_threads(n); }
int mck_threads(void) { return mck::threads(); }
const char* mck_isa(void) { return mck::isa(); }
const char* mck_tiles_isa(void) { return mck::tiles_isa(); }

}  // extern "C"
