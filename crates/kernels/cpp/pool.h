// A small fork-join pool for the kernels: MLX runs every CPU primitive on one stream thread
// and has no thread pool of its own in backend/cpu, so a kernel that wants both cores splits
// its loop here. Threads start lazily on the first parallel loop (never in a process that
// is about to fork: the postmaster loads this library but never runs a kernel).
#pragma once

#include <cstddef>
#include <functional>

namespace mck {

// Threads a parallel loop may use, the calling thread included (>= 1). Takes effect at the
// next loop; shrinking stops the surplus workers.
void set_threads(int n);
int threads();

// Runs body(begin, end) over [0, n) in contiguous chunks of at least `grain` items, on the
// calling thread and the pool's workers; returns when all are done. Nested or concurrent
// calls run serially on the caller (one loop at a time owns the pool).
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& body);

}  // namespace mck
