/* cuda_runtime_api.h (simulator build) — the .cu files include <cuda_runtime.h> as with nvcc; in a simulator
 * build this header stands in for the toolkit's and brings in the simulator (common/cusim/cusim.h). */
#ifndef CUSIM_CUDA_RUNTIME_API_H
#define CUSIM_CUDA_RUNTIME_API_H
#include "../cusim.h"
#endif
