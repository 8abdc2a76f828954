// Forced-included into every mlx-c translation unit (see build.rs).
//
// mlx-c's private/io.h uses std::format with plain "{}" placeholders only. Debian 12's
// libstdc++ 12 has no <format>; rather than patch the vendored sources, this header provides
// a minimal std::format that fills each "{}" in order through an ostringstream. Where the
// standard library has <format> (__cpp_lib_format), it does nothing.
#pragma once
#ifdef __cplusplus
#include <version>
#if !defined(__cpp_lib_format)
#include <sstream>
#include <string>
#include <string_view>

namespace std {
namespace mlx_sys_compat {
inline void format_rest(ostringstream& out, string_view fmt) { out << fmt; }

template <typename T, typename... Rest>
void format_rest(ostringstream& out, string_view fmt, const T& first, const Rest&... rest) {
  auto pos = fmt.find("{}");
  if (pos == string_view::npos) {
    out << fmt;
    return;
  }
  out << fmt.substr(0, pos) << first;
  format_rest(out, fmt.substr(pos + 2), rest...);
}
}  // namespace mlx_sys_compat

template <typename... Args>
string format(string_view fmt, const Args&... args) {
  ostringstream out;
  mlx_sys_compat::format_rest(out, fmt, args...);
  return out.str();
}
}  // namespace std
#endif
#endif
