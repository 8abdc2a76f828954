#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#endif

namespace mck {
namespace {

// How long a worker polls for the next loop before it sleeps (see Pool::spin).
constexpr int kSpinMicros = 200;

// One thread's share of a loop: [next, end), claimed a chunk at a time (by its own thread,
// or by another one that has run out of its own).
struct alignas(64) Segment {
  std::atomic<size_t> next{0};
  size_t end = 0;
};

// Work of one parallel loop. The range is cut into one contiguous segment per thread (the
// starting thread's first), each claimed a chunk at a time with an atomic counter; a thread
// done with its own segment takes chunks from the others', so a worker that wakes late
// simply finds less to do. Contiguous shares keep a thread on the same rows from one kernel
// to the next (the rows a depthwise conv writes are the rows the next kernel's block on that
// thread reads, still in its core's L2): one shared counter had dealt the chunks in turn,
// and the depthwise convs of S2 at batch 1 ran 15-40% longer than with contiguous halves.
struct Job {
  const std::function<void(size_t, size_t, size_t)>* body = nullptr;
  size_t chunk = 1;
  size_t segments = 0;                 // in use for this loop
  size_t capacity = 0;                 // allocated
  std::unique_ptr<Segment[]> segment;  // one per thread the loop is split for
  std::atomic<int> active{0};  // threads still inside this job
};

// The CPU the calling thread runs on, -1 where the platform does not say.
int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

class Pool {
 public:
  ~Pool() { resize(0); }

  void set_threads(int n) {
    std::lock_guard<std::mutex> own(loop_mu_);
    want_ = std::max(1, n);
  }
  int threads() {
    std::lock_guard<std::mutex> own(loop_mu_);
    return want_;
  }

  void run(size_t n, size_t grain, size_t max_threads, size_t chunk,
           const std::function<void(size_t, size_t, size_t)>& body) {
    if (n == 0) return;
    std::unique_lock<std::mutex> own(loop_mu_, std::try_to_lock);
    size_t parts =
        own.owns_lock() ? std::min({static_cast<size_t>(want_), max_threads, n / std::max<size_t>(grain, 1)}) : 1;
    if (parts <= 1) {
      body(0, n, 0);
      return;
    }
    if (workers_.size() != static_cast<size_t>(want_ - 1)) resize(want_ - 1);
    owner_cpu_.store(current_cpu(), std::memory_order_relaxed);
    // A few chunks per thread evens out uneven progress (the other core may be busy with
    // OpenBLAS or another backend).
    size_t chunks = parts * 4;
    job_.body = &body;
    job_.chunk = chunk ? chunk : std::max<size_t>((n + chunks - 1) / chunks, grain);
    // One segment per thread the loop is worth (parts <= n / grain, so no segment is
    // shorter than the grain); the pool's further workers sit this loop out, so a thread's
    // slot (its segment) is below parts.
    const size_t threads = workers_.size() + 1;
    if (job_.capacity < parts) {
      job_.segment.reset(new Segment[parts]);
      job_.capacity = parts;
    }
    job_.segments = parts;
    for (size_t t = 0; t < parts; ++t) {
      job_.segment[t].next.store(n * t / parts, std::memory_order_relaxed);
      job_.segment[t].end = n * (t + 1) / parts;
    }
    job_.active.store(static_cast<int>(threads));
    {
      std::lock_guard<std::mutex> g(mu_);
      ++generation_;
    }
    cv_.notify_all();
    work(0);
    // Wait for the workers to leave the job (they may still be finishing a chunk).
    while (job_.active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  // Thread `slot`'s part of the job: its own segment (slot 0: the starting thread), then the
  // others' leftovers; nothing for a slot beyond the loop's segments.
  void work(size_t slot) {
    for (size_t i = 0; slot < job_.segments && i < job_.segments; ++i) {
      Segment& seg = job_.segment[(slot + i) % job_.segments];
      for (;;) {
        const size_t b = seg.next.fetch_add(job_.chunk);
        if (b >= seg.end) break;
        (*job_.body)(b, std::min(seg.end, b + job_.chunk), slot);
      }
    }
    job_.active.fetch_sub(1, std::memory_order_acq_rel);
  }

  void worker(size_t id) {
    unsigned long seen = 0;
#if defined(__linux__)
    cpu_set_t allowed;
    const bool know_allowed = sched_getaffinity(0, sizeof allowed, &allowed) == 0;
#endif
    for (;;) {
      spin(seen);
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return generation_.load() != seen || stop_ || id >= live_; });
        if (stop_ || id >= live_) return;
        seen = generation_.load();
      }
#if defined(__linux__)
      if (know_allowed) step_aside(allowed);
#endif
      work(id + 1);
    }
  }

#if defined(__linux__)
  // A worker woken on the CPU of the thread that starts the loops can only take turns with
  // it, and the scheduler left it there for whole runs: a kernel then ran as on one thread
  // (attention 16 x 8 x 77 x 64: 1.2 or 2.4 ms from one run of the CLI to the next). Such a
  // worker asks to run on any other CPU it may run on (its mask at start minus that one); the
  // next time it finds itself on the starter's CPU (the starter moved), the mask is made
  // anew, so no CPU stays excluded for good. The starting thread itself is never pinned (in
  // a Postgres backend that is the backend's own thread).
  void step_aside(const cpu_set_t& allowed) {
    const int owner = owner_cpu_.load(std::memory_order_relaxed);
    if (owner < 0 || owner >= CPU_SETSIZE || current_cpu() != owner || !CPU_ISSET(owner, &allowed) ||
        CPU_COUNT(&allowed) < 2)
      return;
    cpu_set_t elsewhere = allowed;
    CPU_CLR(owner, &elsewhere);
    pthread_setaffinity_np(pthread_self(), sizeof elsewhere, &elsewhere);  // (best effort)
  }
#endif

  // After a loop, a worker polls for the next one for a while before it sleeps: a forward
  // pass runs one kernel after another, and waking a sleeping thread costs about as much as
  // a batch of one's smaller kernels (a 70 us depthwise conv ran no faster on two threads
  // than on one: the second woke after the first had done all the work). S0 image b1
  // 24.5-26.1 -> 22.4-23.1 ms, S2 73.8-75.0 -> 65.6-65.9, same CPU time. OpenMP runtimes,
  // MKL and ONNX Runtime's pool poll the same way. The cost: a worker stays busy up to
  // kSpinMicros after a batch's last kernel (none with mobileclip.threads = 1). A worker the
  // scheduler put on the CPU of the thread that starts the loops sleeps at once: polling
  // there would take that thread's time (in a test program, whole runs of a 50 us kernel
  // took 170).
  void spin(unsigned long seen) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
    while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed) &&
           std::chrono::steady_clock::now() < until && !on_owner_cpu()) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  bool on_owner_cpu() const {
    const int cpu = current_cpu();
    return cpu >= 0 && cpu == owner_cpu_.load(std::memory_order_relaxed);
  }

  // Called with loop_mu_ held (or from the destructor).
  void resize(size_t n) {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = false;
      live_ = n;
    }
    // Workers never take the process's signals (in a Postgres backend: SIGINT for cancel,
    // SIGTERM, SIGUSR1 latches): they start with every signal blocked, inherited from here.
#if defined(__unix__) || defined(__APPLE__)
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
#endif
    for (size_t i = 0; i < n; ++i) workers_.emplace_back([this, i] { worker(i); });
#if defined(__unix__) || defined(__APPLE__)
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
#endif
  }

  std::mutex loop_mu_;  // one parallel loop at a time
  int want_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<unsigned long> generation_{0};  // changed under mu_, polled by spin()
  std::atomic<int> owner_cpu_{-1};  // where the last loop was started (-1: unknown)
  size_t live_ = 0;
  std::atomic<bool> stop_{false};  // changed under mu_, polled by spin()
  Job job_;
};

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can hang
  // (the backend exits through proc_exit with workers parked on the condition variable).
  static Pool* p = new Pool();
  return *p;
}

}  // namespace

void set_threads(int n) { pool().set_threads(n); }
int threads() { return pool().threads(); }
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& body) {
  pool().run(n, grain, SIZE_MAX, 0, [&](size_t b, size_t e, size_t) { body(b, e); });
}
void parallel_for_slots(size_t n, size_t grain, size_t max_threads, size_t chunk,
                        const std::function<void(size_t, size_t, size_t)>& body) {
  pool().run(n, grain, std::max<size_t>(max_threads, 1), chunk, body);
}

}  // namespace mck
