#include "common/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sutra {
namespace {

thread_local bool t_in_pool_work = false;

class Pool {
 public:
  // Asks for `threads` (the caller included). If the OS refuses a worker thread
  // (EAGAIN under RLIMIT_NPROC / a pids cgroup, or no address space for its
  // stack under RLIMIT_AS), the workers already started are stopped and joined
  // and half as many as did start are started instead: a pool that takes the
  // last thread or the last bytes of address space would only move the failure
  // to the next allocation or thread of the process. Never throws for that;
  // size() tells what it runs with, first_started() / start_error() what
  // went wrong.
  explicit Pool(int threads) : requested_(threads) {
    int want = threads - 1;
    while (want > 0) {
      const int started = start_workers(want);
      if (started == want) break;
      if (first_started_ < 0) first_started_ = started;
      want = started / 2;
    }
  }
  ~Pool() { stop_workers(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int requested() const { return requested_; }
  // -1 if every worker asked for started; else how many had started when the
  // first one failed, and why (the exception's message).
  int first_started() const { return first_started_; }
  const char* start_error() const { return start_error_; }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Returns false (and does nothing) if another caller is using the pool.
  bool try_run(std::size_t n, std::size_t chunk,
               const std::function<void(std::size_t, std::size_t)>& fn) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      chunk_ = chunk;
      next_.store(0);
      error_ = nullptr;
      active_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  void work() {
    t_in_pool_work = true;
    for (;;) {
      const std::size_t begin = next_.fetch_add(chunk_);
      if (begin >= n_) break;
      const std::size_t end = std::min(n_, begin + chunk_);
      try {
        (*fn_)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_);  // stop handing out work
      }
    }
    t_in_pool_work = false;
  }

  // Starts n workers. All or nothing: on failure the ones started are stopped
  // and joined; returns how many had started (n on success).
  int start_workers(int n) {
    try {
      workers_.reserve(static_cast<std::size_t>(n));  // emplace_back cannot reallocate
      for (int i = 0; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
      return n;
    } catch (const std::exception& e) {
      std::snprintf(start_error_, sizeof start_error_, "%s", e.what());
    } catch (...) {
      std::snprintf(start_error_, sizeof start_error_, "unknown error");
    }
    const int started = static_cast<int>(workers_.size());
    stop_workers();
    return started;
  }

  // Tells every worker to exit and joins it; the pool can start workers again.
  // Workers only ever wait on wake_ between jobs, and no job runs here (the
  // constructor, or the destructor of the last owner), so none is left behind.
  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }

  void worker_loop() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  const int requested_;
  int first_started_ = -1;
  char start_error_[160] = "";
  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  bool stop_ = false;
  std::uint64_t generation_ = 0;
  int active_ = 0;
  const std::function<void(std::size_t, std::size_t)>* fn_ = nullptr;
  std::size_t n_ = 0, chunk_ = 1;
  std::atomic<std::size_t> next_{0};
  std::exception_ptr error_;
};

std::mutex g_pool_mu;
std::shared_ptr<Pool> g_pool;   // created lazily, sized to num_threads()
std::atomic<int> g_threads{0};  // 0 = default
std::once_flag g_atfork_once;

// In a forked child only the forking thread exists: forget the parent's pool
// (its threads are gone; destroying it would join them) and start afresh.
void reset_after_fork() {
  new (&g_pool_mu) std::mutex();
  new (&g_pool) std::shared_ptr<Pool>();  // leaks the parent's pool on purpose
}

// One line on stderr when the pool runs with fewer threads than asked for
// (once per pool built; the lowered num_threads() then reuses that pool).
void warn_shortfall(const Pool& pool) {
  std::fprintf(stderr,
               "sutra_fast: could start only %d of %d worker threads (%s); using %d threads "
               "(the caller included). Lower SUTRA_NUM_THREADS or sutra_fast.set_num_threads() "
               "to at most %d to avoid this.\n",
               pool.first_started(), pool.requested() - 1, pool.start_error(), pool.size(),
               pool.size());
  std::fflush(stderr);
}

// A caller keeps its pool alive while it runs, even if another thread resizes.
std::shared_ptr<Pool> get_pool(int threads) {
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, reset_after_fork); });
  std::lock_guard<std::mutex> lock(g_pool_mu);
  bool fresh = false;
  if (g_pool == nullptr || (g_pool->size() != threads && g_pool->requested() != threads)) {
    g_pool.reset();  // its threads go first (unless a caller still runs on it)
    g_pool = std::make_shared<Pool>(threads);
    fresh = true;
  }
  if (g_pool->size() < threads) {
    // Threads failed to start: num_threads() becomes what the pool really has,
    // unless set_num_threads() changed it meanwhile.
    int expected = g_threads.load();
    if (expected == 0 || expected == threads) g_threads.compare_exchange_strong(expected, g_pool->size());
    if (fresh) warn_shortfall(*g_pool);
  }
  return g_pool;
}

}  // namespace

int default_num_threads() noexcept {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

int num_threads() noexcept {
  const int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_num_threads();
}

void set_num_threads(int n) {
  if (n < 1 || n > kMaxNumThreads)
    throw std::invalid_argument("number of threads must be >= 1 and <= " +
                                std::to_string(kMaxNumThreads) + ", got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
}

void parallel_for(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  const int threads = num_threads();
  if (threads <= 1 || n <= grain || t_in_pool_work) {
    fn(0, n);
    return;
  }
  // Chunks: about 4 per thread for balance, never smaller than grain.
  const std::size_t chunk = std::max(grain, (n + 4 * threads - 1) / (4 * threads));
  if (!get_pool(threads)->try_run(n, chunk, fn)) fn(0, n);
}

}  // namespace sutra
