#include "omnifuse_gpu.h"
// Placeholder: the kernels of this family land with the CUDA backend's kernel changes.
