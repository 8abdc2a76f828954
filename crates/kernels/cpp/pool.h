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

// The same loop for kernels that keep per-thread state (a scratch buffer, the row block a
// thread last packed): body(begin, end, slot) over [0, n), at most `max_threads` threads,
// `chunk` items at a time (0: the pool's choice, at least `grain`). `slot` < max_threads is
// the running thread's own for the whole loop (the starting thread's is 0), and the range
// is dealt as in parallel_for: each thread starts on its own contiguous share, then takes
// what is left of the others'.
void parallel_for_slots(size_t n, size_t grain, size_t max_threads, size_t chunk,
                        const std::function<void(size_t, size_t, size_t)>& body);

}  // namespace mck
