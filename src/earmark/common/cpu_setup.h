#pragma once
// Process set-up for CPU inference and training with libtorch, called first thing in main() by
// the binaries (the library itself leaves process-wide state alone).
//  - glibc's malloc returns big freed blocks to the kernel and maps new ones with mmap; libtorch
//    allocates and frees its activations on every call, so each call pays page faults: raising
//    both thresholds keeps the memory in the heap (inference 3-7x faster on this machine).
//  - OpenBLAS (libopenblas0-pthread, which Debian's libtorch then uses instead of the reference
//    BLAS, 10-20x faster on its matrix products) starts a thread per core for every product;
//    under libtorch's own threads that oversubscribes the cores. It is held to one thread here,
//    as OPENBLAS_NUM_THREADS=1 would, since the variable is read before main() runs.
#include <dlfcn.h>
#include <malloc.h>

namespace earmark {

inline void configure_cpu_inference() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set(1);
}

}  // namespace earmark
