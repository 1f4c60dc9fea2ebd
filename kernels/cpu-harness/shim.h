// Lets a .cu kernel file compile as C++ and run on the CPU (kernels/cpu-harness/harness.cpp): every thread of a
// block is a cooperative fiber (ucontext) and __syncthreads() switches back to the block's scheduler, which
// resumes the next fiber; blocks run one after another. Used with -include shim.h. The kernels use no inline
// PTX, shuffles or atomics, so this is all they need.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

struct adder_dim3 { unsigned x, y, z; };
// The running fiber's coordinates; the scheduler sets threadIdx before resuming a fiber.
extern adder_dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __host__
#define __shared__ static   // one instance for the whole (sequentially run) grid: block-shared
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// CUDA's vector types (vector_types.h), as far as the kernels use them.
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// Suspends this thread until every thread of the block has reached a barrier (harness.cpp).
void __syncthreads();

inline float __int_as_float(int i) { float f; memcpy(&f, &i, sizeof f); return f; }
