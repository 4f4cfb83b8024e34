// Compiled once per ISA level: fills that level's RWKV kernel table.
#include "rwkv/kernels_impl.h"
#include "rwkv/kernels_table.h"

namespace sutra::rwkv::SUTRA_ISA_NS {

extern const KernelTable kTable = {
    &gemm_f32,         &gemm_bf16_widen,   SUTRA_RWKV_BF16_DP,
    &gemm_i8_portable, SUTRA_RWKV_I8_VNNI, &wkv_step,
};

}  // namespace sutra::rwkv::SUTRA_ISA_NS
