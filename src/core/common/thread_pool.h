// One process-wide pool of worker threads shared by every compiled component.
// Work is split by an atomic index (sentencepiece style); the calling thread
// takes part. Safe after fork(): the child re-creates the pool on first use.
#pragma once
#include <cstddef>
#include <functional>

namespace sutra {

// Upper bound for set_num_threads (and SUTRA_NUM_THREADS).
constexpr int kMaxNumThreads = 1024;

// Threads used by parallel_for (the caller included). Default: the CPUs this
// process may run on (sched_getaffinity), at least 1. If the pool could not
// start all the worker threads asked for (thread or memory limits), this is
// the number it runs with instead (see parallel_for).
int num_threads() noexcept;
// 1 <= n <= kMaxNumThreads, else std::invalid_argument. Takes effect for the
// next parallel_for.
void set_num_threads(int n);
int default_num_threads() noexcept;

// Calls fn(begin, end) over [0, n) in chunks of at least `grain` items. Runs
// inline when the pool has one thread, when n is small, when called from a
// worker (no nested parallelism) or while another caller holds the pool. The
// first exception thrown by any chunk is re-thrown on the caller after all
// chunks have stopped.
// If the OS refuses to start the pool's worker threads (RLIMIT_NPROC, pids
// cgroup, RLIMIT_AS, ...), the pool stops and joins the ones it started,
// starts half as many (leaving headroom for the rest of the process), prints
// one warning to stderr and lowers num_threads() to the size it runs with.
// Results are the same; only the parallelism is lower.
void parallel_for(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace sutra
