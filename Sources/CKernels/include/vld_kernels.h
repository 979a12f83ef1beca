// vld_kernels.h: the engine's element-wise and small reduction kernels, compiled once per
// instruction set (baseline SSE2, AVX2+FMA, AVX-512) and chosen at run time from CPUID, so one
// amd64 build uses the vectors of the machine it runs on. VLD_KERNELS=generic|avx2|avx512 forces a
// path (a path the CPU lacks falls back to the best it has, with a note on stderr).
//
// Each path is deterministic: reductions keep a fixed order of lanes and partial sums, so the same
// path and thread count give bitwise the same numbers. Paths differ from one another in the last
// bits (wider partial sums, fused multiply-adds); the tests hold every path the CPU has to the
// naive references in VLDTensor/Reference.swift.
#ifndef VLD_KERNELS_H
#define VLD_KERNELS_H

#include <stdint.h>

enum { VLD_PATH_GENERIC = 0, VLD_PATH_AVX2 = 1, VLD_PATH_AVX512 = 2 };

/// One instruction set's kernels. All lengths are element counts; pointers may be unaligned.
typedef struct vld_kernel_table {
    int path;
    const char *name;
    /// sum a[i] b[i]
    float (*dot)(const float *a, const float *b, long n);
    /// sum p[i]
    float (*sum)(const float *p, long n);
    /// max p[i] (n >= 1)
    float (*max)(const float *p, long n);
    /// out[i] = exp(x[i] scale - shift)
    void (*scaled_exp)(float *out, const float *x, float scale, float shift, long n);
    /// y[i] += a x[i]
    void (*axpy)(float *y, float a, const float *x, long n);
    /// p = softmax(p) (max-subtracted)
    void (*softmax)(float *p, long n);
    /// out = gelu_tanh(inp); tanh_cache (nullable) receives the tanh term
    void (*gelu_fwd)(float *out, const float *inp, float *tanh_cache, long n);
    /// dinp += dout gelu'(inp) (dinp = ... when overwrite); tanh_cache (nullable) from gelu_fwd
    /// saves the exponential
    void (*gelu_bwd)(float *dinp, const float *inp, const float *tanh_cache, const float *dout, long n, int overwrite);
    /// out[i] = silu(gate[i]) up[i]
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, long n);
    /// dgate += dout up sig (1 + gate (1 - sig)), dup += dout silu(gate) (= when overwrite)
    void (*swiglu_bwd)(float *dgate, float *dup, const float *gate, const float *up, const float *dout, long n,
                       int overwrite);
    /// One row of LayerNorm: out = (x - mean) rstd w + b, with *mean and *rstd stored
    void (*layernorm_fwd)(float *out, const float *x, const float *w, const float *b, long c, float eps, float *mean,
                          float *rstd);
    /// Its backward for one row: dx += ..., dw += norm dout, db += dout
    void (*layernorm_bwd)(float *dx, float *dw, float *db, const float *dout, const float *x, const float *w,
                          float mean, float rstd, long c);
    /// One row of RMSNorm: out = x rrms w, with *rrms stored
    void (*rmsnorm_fwd)(float *out, const float *x, const float *w, long c, float eps, float *rrms);
    /// Its backward for one row: dx += rrms (w dout - norm mean(w dout norm)), dw += norm dout
    void (*rmsnorm_bwd)(float *dx, float *dw, const float *dout, const float *x, const float *w, float rrms, long c);
    /// One AdamW step: m, v updated; p -= lr (m c1 / (sqrt(v c2) + eps) + wd p)
    void (*adamw)(float *p, const float *g, float *m, float *v, long n, float lr, float b1, float b2, float c1,
                  float c2, float eps, float wd);
    /// One decode query against n cached keys and values of one head (rows of hs floats, stride
    /// `stride` floats apart): out (hs) = softmax(scale K q) V; scratch holds n floats.
    void (*attn_decode)(float *out, const float *q, const float *k, const float *v, long n, long hs, long stride,
                        float scale, float *scratch);
} vld_kernel_table;

/// A spin-wait hint (PAUSE on x86-64): the thread pool's busy-waits call it each turn.
static inline void vld_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// The table in use (chosen once, at load time).
const vld_kernel_table *vld_kernels(void);
/// The table of `path`, or NULL when this CPU cannot run it (tests run every path they get).
const vld_kernel_table *vld_kernels_for(int path);

#endif
