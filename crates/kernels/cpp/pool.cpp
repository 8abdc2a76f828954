#include "pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <signal.h>
#endif

namespace mck {
namespace {

// Work of one parallel loop: chunks are claimed with an atomic counter, so a worker that
// wakes late simply finds less to do.
struct Job {
  const std::function<void(size_t, size_t)>* body = nullptr;
  size_t n = 0;
  size_t chunk = 1;
  std::atomic<size_t> next{0};
  std::atomic<int> active{0};  // threads still inside this job
};

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

  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& body) {
    if (n == 0) return;
    std::unique_lock<std::mutex> own(loop_mu_, std::try_to_lock);
    size_t parts = own.owns_lock() ? std::min<size_t>(want_, n / std::max<size_t>(grain, 1)) : 1;
    if (parts <= 1) {
      body(0, n);
      return;
    }
    if (workers_.size() != static_cast<size_t>(want_ - 1)) resize(want_ - 1);
    // A few chunks per thread evens out uneven progress (the other core may be busy with
    // OpenBLAS or another backend).
    size_t chunks = parts * 4;
    job_.body = &body;
    job_.n = n;
    job_.chunk = std::max<size_t>((n + chunks - 1) / chunks, grain);
    job_.next.store(0);
    job_.active.store(1 + static_cast<int>(workers_.size()));
    {
      std::lock_guard<std::mutex> g(mu_);
      ++generation_;
    }
    cv_.notify_all();
    work();
    // Wait for the workers to leave the job (they may still be finishing a chunk).
    while (job_.active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  }

 private:
  void work() {
    for (;;) {
      size_t b = job_.next.fetch_add(job_.chunk);
      if (b >= job_.n) break;
      (*job_.body)(b, std::min(job_.n, b + job_.chunk));
    }
    job_.active.fetch_sub(1, std::memory_order_acq_rel);
  }

  void worker(size_t id) {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return generation_ != seen || stop_ || id >= live_; });
        if (stop_ || id >= live_) return;
        seen = generation_;
      }
      work();
    }
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
  unsigned long generation_ = 0;
  size_t live_ = 0;
  bool stop_ = false;
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
  pool().run(n, grain, body);
}

}  // namespace mck
