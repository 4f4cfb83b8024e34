// Compiled once per ISA level: fills that level's kernel table.
#include "embed/kernels_impl.h"
#include "embed/kernels_table.h"

namespace sutra::embed::SUTRA_ISA_NS {

extern const KernelTable kTable = {
    &mean_pool_rows<int64_t>, &mean_pool_rows<int32_t>,
    &cls_pool_rows<int64_t>,  &cls_pool_rows<int32_t>,
    &max_pool_rows<int64_t>,  &max_pool_rows<int32_t>,
    &l2_normalize_rows,       &matryoshka_rows,
};

}  // namespace sutra::embed::SUTRA_ISA_NS
