// emu.h: run Syntonic's generated CUDA C on the host, to test it without a GPU.
//
// Compiled with `g++ -std=c++20 -include emu.h` in front of the generated source (see
// syntonic/lower/cuda/emulate.py). What it models:
//   * a launch runs its blocks one after another; each block's threads are real
//     std::threads (one team of blockDim threads per launch, reused for every block), so
//     a kernel's `__shared__` arrays (here: function-local statics) have exactly one
//     instance per running block and are shared by its threads;
//   * __syncthreads() is a real barrier across the block's threads (std::barrier);
//   * warp shuffles exchange values through a per-warp slot array between two barriers of
//     the warp's 32 threads (warp size 32; blockDim.x must be a multiple of 32);
//   * threadIdx/blockIdx/blockDim/gridDim are thread_local; 1-D grids and blocks;
//   * the f16 conversions the prelude takes from PTX, through _Float16 (round to nearest
//     even, as cvt.rn); bit casts; atomicAdd through std::atomic_ref.
// Not modelled: warp-synchronous execution without *_sync calls, memory-model races (the
// threads are real, so a missing barrier shows up only sometimes), device math accuracy
// (expf etc. are the C library's).
#pragma once
#define SN_EMULATION 1

#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct sn_dim3 {
  unsigned x, y, z;
};
inline thread_local sn_dim3 threadIdx{0, 0, 0};
inline thread_local sn_dim3 blockIdx{0, 0, 0};
inline thread_local sn_dim3 blockDim{1, 1, 1};
inline thread_local sn_dim3 gridDim{1, 1, 1};

// ------------------------------------------------------------------ bit casts, f16

template <class To, class From>
inline To sn_bits(From x) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  std::memcpy(&out, &x, sizeof(To));
  return out;
}
inline float __int_as_float(int x) { return sn_bits<float>(x); }
inline int __float_as_int(float x) { return sn_bits<int>(x); }
inline double __longlong_as_double(long long x) { return sn_bits<double>(x); }
inline long long __double_as_longlong(double x) { return sn_bits<long long>(x); }

typedef unsigned short sn_half;
inline float sn_h2f(sn_half h) { return (float)sn_bits<_Float16>(h); }
inline sn_half sn_f2h(float f) { return sn_bits<sn_half>((_Float16)f); }
inline sn_half sn_d2h(double d) { return sn_bits<sn_half>((_Float16)d); }

// ------------------------------------------------------------------ blocks and warps

namespace sn_emu {

struct Block {
  explicit Block(unsigned threads)
      : bar(threads), warps(threads / 32), slots(threads / 32) {
    for (auto& w : warps) w = std::make_unique<std::barrier<>>(32);
  }
  std::barrier<> bar;                                  // __syncthreads
  std::vector<std::unique_ptr<std::barrier<>>> warps;  // one per warp
  std::vector<std::array<unsigned long long, 32>> slots;          // shuffle exchange, per warp
};

inline thread_local Block* current = nullptr;

// Every lane of the warp publishes `v`; each gets lane `src`'s value (its own if src < 0).
template <class T>
inline T exchange(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  Block* b = current;
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  b->slots[warp][lane] = bits;
  b->warps[warp]->arrive_and_wait();
  T out = v;
  if (src >= 0 && src < 32) std::memcpy(&out, &b->slots[warp][src], sizeof(T));
  b->warps[warp]->arrive_and_wait();  // nobody overwrites a slot before all have read
  return out;
}

template <class... P, std::size_t... I>
inline void call(void (*fn)(P...), void** args, std::index_sequence<I...>) {
  // args[i] points at the i-th argument's value, as cuLaunchKernel's kernelParams.
  fn(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}

// Run `fn` on a grid of `grid` blocks of `block` threads (blocks in order).
template <class... P>
inline void launch(void (*fn)(P...), unsigned grid, unsigned block, void** args) {
  if (grid == 0 || block == 0) return;
  Block b(block);
  std::vector<std::thread> team;
  team.reserve(block);
  for (unsigned t = 0; t < block; ++t) {
    team.emplace_back([&b, fn, grid, block, args, t] {
      current = &b;
      threadIdx = {t, 0, 0};
      blockDim = {block, 1, 1};
      gridDim = {grid, 1, 1};
      for (unsigned g = 0; g < grid; ++g) {
        blockIdx = {g, 0, 0};
        call(fn, args, std::index_sequence_for<P...>{});
        b.bar.arrive_and_wait();  // the block ends: its shared memory is free again
      }
    });
  }
  for (auto& th : team) th.join();
}

}  // namespace sn_emu

inline void __syncthreads() { sn_emu::current->bar.arrive_and_wait(); }

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
  (void)width;
  return sn_emu::exchange(v, src & 31);
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  (void)width;
  const int src = (int)(threadIdx.x & 31u) + (int)delta;
  return sn_emu::exchange(v, src < 32 ? src : -1);
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
  (void)width;
  return sn_emu::exchange(v, (int)(threadIdx.x & 31u) ^ mask);
}

template <class T>
inline T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
