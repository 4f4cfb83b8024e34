# Declarations of the C++ embedding kernels (src/core/embed/kernels.h).
from libc.stdint cimport int32_t, int64_t
from libcpp cimport bool as cbool

cdef extern from "embed/kernels.h" namespace "sutra::embed" nogil:
    void check_mask(const int64_t* mask, int64_t n) except +
    void check_mask(const int32_t* mask, int64_t n) except +
    void mean_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void mean_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void cls_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void cls_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void max_pool(const float* h, const int64_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void max_pool(const float* h, const int32_t* m, int64_t B, int64_t T, int64_t H, float* out) except +
    void l2_normalize(const float* x, int64_t N, int64_t D, float eps, float* out) except +
    void matryoshka(const float* x, int64_t N, int64_t D, int64_t dim, cbool layer_norm, float* out) except +
