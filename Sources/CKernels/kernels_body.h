// kernels_body.h: the kernels of vld_kernels.h, written once over clang's vector extensions and
// included by kernels.c once per path with VW (floats per vector), SFX (name suffix) and
// VLD_TARGET (the function attribute that lets the compiler use that instruction set). Tails
// shorter than a vector run as scalars. vexp is plain arithmetic and bit casts, so it vectorises:
// the Cephes range reduction (x = n ln2 + r, |r| <= ln2/2, n by the 1.5 * 2^23 rounding trick)
// and a degree-6 polynomial, clamped to the normal float range (relative error below 3e-7 against
// libm on every path: KernelPathTests).

#define VCAT2(a, b) a##_##b
#define VCAT(a, b) VCAT2(a, b)
#define KN(name) VCAT(name, SFX)
#define vf VCAT(vf, SFX)
#define vfu VCAT(vfu, SFX)
#define vi VCAT(vi, SFX)

typedef float vf __attribute__((ext_vector_type(VW)));
typedef float vfu __attribute__((ext_vector_type(VW), aligned(4)));
typedef int32_t vi __attribute__((ext_vector_type(VW)));

#define LD(p) (*(const vfu *)(p))
#define ST(p, x) (*(vfu *)(p) = (x))

// The sum of a vector's lanes, halving it (lanes i and i + VW/2 first): a fixed order.
static inline VLD_TARGET float KN(hsum)(vf x) {
#if VW == 16
    typedef float h8 __attribute__((ext_vector_type(8)));
    h8 a = x.lo + x.hi;
    typedef float h4 __attribute__((ext_vector_type(4)));
    h4 b = a.lo + a.hi;
#elif VW == 8
    typedef float h4 __attribute__((ext_vector_type(4)));
    h4 b = x.lo + x.hi;
#else
    vf b = x;
#endif
    typedef float h2 __attribute__((ext_vector_type(2)));
    h2 c = b.lo + b.hi;
    return c.x + c.y;
}

static inline VLD_TARGET vf KN(vexp)(vf xin) {
    vf x = __builtin_elementwise_min(__builtin_elementwise_max(xin, (vf)(-87.3f)), (vf)(88.3f));
    vf t = x * 1.4426950408889634f + 12582912.0f;
    vf n = t - 12582912.0f;
    vf r = x - n * 0.693359375f;
    r = r + n * 2.1219444005469058e-4f;
    vf p = (vf)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi ni = (vi)t - (vi)0x4B400000;
    vf scale = (vf)((ni + 127) << 23);
    return p * scale;
}

static inline VLD_TARGET float KN(sexp)(float xin) {
    vf v = KN(vexp)((vf)(xin));
    return v[0];
}

static VLD_TARGET float KN(dot)(const float *a, const float *b, long n) {
    vf s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    long i = 0;
    for (; i + 4 * VW <= n; i += 4 * VW) {
        s0 += LD(a + i) * LD(b + i);
        s1 += LD(a + i + VW) * LD(b + i + VW);
        s2 += LD(a + i + 2 * VW) * LD(b + i + 2 * VW);
        s3 += LD(a + i + 3 * VW) * LD(b + i + 3 * VW);
    }
    for (; i + VW <= n; i += VW) s0 += LD(a + i) * LD(b + i);
    float s = KN(hsum)((s0 + s2) + (s1 + s3));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static VLD_TARGET float KN(sum)(const float *p, long n) {
    vf s0 = 0, s1 = 0;
    long i = 0;
    for (; i + 2 * VW <= n; i += 2 * VW) {
        s0 += LD(p + i);
        s1 += LD(p + i + VW);
    }
    for (; i + VW <= n; i += VW) s0 += LD(p + i);
    float s = KN(hsum)(s0 + s1);
    for (; i < n; i++) s += p[i];
    return s;
}

static VLD_TARGET float KN(max)(const float *p, long n) {
    float mx = p[0];
    long i = 0;
    if (n >= VW) {
        vf m = LD(p);
        for (i = VW; i + VW <= n; i += VW) m = __builtin_elementwise_max(m, LD(p + i));
        for (int l = 0; l < VW; l++) mx = m[l] > mx ? m[l] : mx;
    }
    for (; i < n; i++) mx = p[i] > mx ? p[i] : mx;
    return mx;
}

static VLD_TARGET void KN(scaled_exp)(float *out, const float *x, float scale, float shift, long n) {
    long i = 0;
    for (; i + VW <= n; i += VW) ST(out + i, KN(vexp)(LD(x + i) * scale - shift));
    for (; i < n; i++) out[i] = KN(sexp)(x[i] * scale - shift);
}

static VLD_TARGET void KN(axpy)(float *y, float a, const float *x, long n) {
    long i = 0;
    for (; i + VW <= n; i += VW) ST(y + i, LD(y + i) + a * LD(x + i));
    for (; i < n; i++) y[i] += a * x[i];
}

static VLD_TARGET void KN(softmax)(float *p, long n) {
    if (n <= 0) return;
    float mx = KN(max)(p, n);
    long i;
    vf s = 0;
    float st = 0;
    for (i = 0; i + VW <= n; i += VW) {
        vf e = KN(vexp)(LD(p + i) - mx);
        ST(p + i, e);
        s += e;
    }
    for (; i < n; i++) {
        p[i] = KN(sexp)(p[i] - mx);
        st += p[i];
    }
    float inv = 1.0f / (KN(hsum)(s) + st);
    for (i = 0; i + VW <= n; i += VW) ST(p + i, LD(p + i) * inv);
    for (; i < n; i++) p[i] *= inv;
}

#define GELU_K 0.7978845608028654f

static inline VLD_TARGET vf KN(vtanh)(vf x) { return 1.0f - 2.0f / (KN(vexp)(2.0f * x) + 1.0f); }

static VLD_TARGET void KN(gelu_fwd)(float *out, const float *inp, float *tc, long n) {
    long i = 0;
    for (; i + VW <= n; i += VW) {
        vf x = LD(inp + i);
        vf t = KN(vtanh)(GELU_K * (x + 0.044715f * x * x * x));
        if (tc) ST(tc + i, t);
        ST(out + i, 0.5f * x * (1.0f + t));
    }
    for (; i < n; i++) {
        float x = inp[i];
        float t = KN(vtanh)((vf)(GELU_K * (x + 0.044715f * x * x * x)))[0];
        if (tc) tc[i] = t;
        out[i] = 0.5f * x * (1.0f + t);
    }
}

static VLD_TARGET void KN(gelu_bwd)(float *dinp, const float *inp, const float *tc, const float *dout, long n,
                                    int overwrite) {
    long i = 0;
    for (; i + VW <= n; i += VW) {
        vf x = LD(inp + i), x2 = x * x;
        vf t = tc ? LD(tc + i) : KN(vtanh)(GELU_K * (x + 0.044715f * x2 * x));
        vf g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x2);
        vf d = LD(dout + i) * g;
        ST(dinp + i, overwrite ? d : LD(dinp + i) + d);
    }
    for (; i < n; i++) {
        float x = inp[i], x2 = x * x;
        float t = tc ? tc[i] : KN(vtanh)((vf)(GELU_K * (x + 0.044715f * x2 * x)))[0];
        float g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x2);
        dinp[i] = (overwrite ? 0.0f : dinp[i]) + dout[i] * g;
    }
}

static VLD_TARGET void KN(swiglu_fwd)(float *out, const float *gate, const float *up, long n) {
    long i = 0;
    for (; i + VW <= n; i += VW) {
        vf g = LD(gate + i);
        ST(out + i, g / (1.0f + KN(vexp)(-g)) * LD(up + i));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + KN(sexp)(-gate[i])) * up[i];
}

static VLD_TARGET void KN(layernorm_fwd)(float *out, const float *x, const float *w, const float *b, long c, float eps,
                                         float *mean, float *rstd) {
    float m = KN(sum)(x, c) / (float)c;
    vf acc = 0;
    float st = 0;
    long i = 0;
    for (; i + VW <= c; i += VW) {
        vf d = LD(x + i) - m;
        acc += d * d;
    }
    for (; i < c; i++) st += (x[i] - m) * (x[i] - m);
    float r = 1.0f / __builtin_sqrtf((KN(hsum)(acc) + st) / (float)c + eps);
    for (i = 0; i + VW <= c; i += VW) ST(out + i, (LD(x + i) - m) * r * LD(w + i) + LD(b + i));
    for (; i < c; i++) out[i] = (x[i] - m) * r * w[i] + b[i];
    *mean = m;
    *rstd = r;
}

static VLD_TARGET void KN(layernorm_bwd)(float *dx, float *dw, float *db, const float *g, const float *x, const float *w,
                                         float m, float r, long c) {
    vf a1 = 0, a2 = 0;
    float s1 = 0, s2 = 0;
    long i = 0;
    for (; i + VW <= c; i += VW) {
        vf norm = (LD(x + i) - m) * r, dnorm = LD(w + i) * LD(g + i);
        a1 += dnorm;
        a2 += dnorm * norm;
    }
    for (; i < c; i++) {
        float norm = (x[i] - m) * r, dnorm = w[i] * g[i];
        s1 += dnorm;
        s2 += dnorm * norm;
    }
    float mean1 = (KN(hsum)(a1) + s1) / (float)c, mean2 = (KN(hsum)(a2) + s2) / (float)c;
    for (i = 0; i + VW <= c; i += VW) {
        vf gi = LD(g + i), norm = (LD(x + i) - m) * r, dnorm = LD(w + i) * gi;
        ST(db + i, LD(db + i) + gi);
        ST(dw + i, LD(dw + i) + norm * gi);
        ST(dx + i, LD(dx + i) + (dnorm - mean1 - norm * mean2) * r);
    }
    for (; i < c; i++) {
        float norm = (x[i] - m) * r, dnorm = w[i] * g[i];
        db[i] += g[i];
        dw[i] += norm * g[i];
        dx[i] += (dnorm - mean1 - norm * mean2) * r;
    }
}

static VLD_TARGET void KN(rmsnorm_fwd)(float *out, const float *x, const float *w, long c, float eps, float *rrms) {
    float r = 1.0f / __builtin_sqrtf(KN(dot)(x, x, c) / (float)c + eps);
    long i = 0;
    for (; i + VW <= c; i += VW) ST(out + i, LD(x + i) * r * LD(w + i));
    for (; i < c; i++) out[i] = x[i] * r * w[i];
    *rrms = r;
}

static VLD_TARGET void KN(rmsnorm_bwd)(float *dx, float *dw, const float *g, const float *x, const float *w, float r,
                                       long c) {
    vf a = 0;
    float s = 0;
    long i = 0;
    for (; i + VW <= c; i += VW) a += LD(w + i) * LD(g + i) * LD(x + i) * r;
    for (; i < c; i++) s += w[i] * g[i] * x[i] * r;
    float dot = (KN(hsum)(a) + s) / (float)c;
    for (i = 0; i + VW <= c; i += VW) {
        vf gi = LD(g + i), norm = LD(x + i) * r;
        ST(dw + i, LD(dw + i) + norm * gi);
        ST(dx + i, LD(dx + i) + r * (LD(w + i) * gi - norm * dot));
    }
    for (; i < c; i++) {
        float norm = x[i] * r;
        dw[i] += norm * g[i];
        dx[i] += r * (w[i] * g[i] - norm * dot);
    }
}

static VLD_TARGET void KN(swiglu_bwd)(float *dgate, float *dup, const float *gate, const float *up, const float *dout,
                                      long n, int overwrite) {
    long i = 0;
    for (; i + VW <= n; i += VW) {
        vf g = LD(gate + i), u = LD(up + i), d = LD(dout + i);
        vf sig = 1.0f / (1.0f + KN(vexp)(-g));
        vf dg = d * u * sig * (1.0f + g * (1.0f - sig)), du = d * g * sig;
        ST(dgate + i, overwrite ? dg : LD(dgate + i) + dg);
        ST(dup + i, overwrite ? du : LD(dup + i) + du);
    }
    for (; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + KN(sexp)(-g));
        float dg = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig)), du = dout[i] * g * sig;
        dgate[i] = (overwrite ? 0.0f : dgate[i]) + dg;
        dup[i] = (overwrite ? 0.0f : dup[i]) + du;
    }
}

static VLD_TARGET void KN(adamw)(float *p, const float *g, float *m, float *v, long n, float lr, float b1, float b2,
                                 float c1, float c2, float eps, float wd) {
    long i = 0;
    for (; i + VW <= n; i += VW) {
        vf gi = LD(g + i);
        vf mi = b1 * LD(m + i) + (1.0f - b1) * gi;
        vf vi_ = b2 * LD(v + i) + (1.0f - b2) * gi * gi;
        ST(m + i, mi);
        ST(v + i, vi_);
        vf pi = LD(p + i);
        ST(p + i, pi - lr * ((mi * c1) / (__builtin_elementwise_sqrt(vi_ * c2) + eps) + wd * pi));
    }
    for (; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi_ = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi_;
        p[i] -= lr * ((mi * c1) / (__builtin_sqrtf(vi_ * c2) + eps) + wd * p[i]);
    }
}

// Decode attention for one head: scores four keys at a time (four independent chains of
// multiply-adds, then four lane sums) and accumulates the values with four accumulators per slice
// of the head (keys j, j+1, j+2, j+3), summed in that fixed order at the end.
static VLD_TARGET void KN(attn_decode)(float *out, const float *q, const float *k, const float *v, long n, long hs,
                                       long stride, float scale, float *p) {
    long j = 0;
    for (; j + 4 <= n; j += 4) {
        const float *k0 = k + j * stride, *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
        vf a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        long d = 0;
        for (; d + VW <= hs; d += VW) {
            vf qv = LD(q + d);
            a0 += qv * LD(k0 + d);
            a1 += qv * LD(k1 + d);
            a2 += qv * LD(k2 + d);
            a3 += qv * LD(k3 + d);
        }
        float s0 = KN(hsum)(a0), s1 = KN(hsum)(a1), s2 = KN(hsum)(a2), s3 = KN(hsum)(a3);
        for (; d < hs; d++) {
            s0 += q[d] * k0[d];
            s1 += q[d] * k1[d];
            s2 += q[d] * k2[d];
            s3 += q[d] * k3[d];
        }
        p[j] = s0 * scale;
        p[j + 1] = s1 * scale;
        p[j + 2] = s2 * scale;
        p[j + 3] = s3 * scale;
    }
    for (; j < n; j++) p[j] = KN(dot)(q, k + j * stride, hs) * scale;
    KN(softmax)(p, n);
    long d = 0;
    for (; d + VW <= hs; d += VW) {
        vf c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        long i = 0;
        for (; i + 4 <= n; i += 4) {
            const float *r = v + i * stride + d;
            c0 += p[i] * LD(r);
            c1 += p[i + 1] * LD(r + stride);
            c2 += p[i + 2] * LD(r + 2 * stride);
            c3 += p[i + 3] * LD(r + 3 * stride);
        }
        for (; i < n; i++) c0 += p[i] * LD(v + i * stride + d);
        ST(out + d, (c0 + c1) + (c2 + c3));
    }
    for (; d < hs; d++) {
        float acc = 0;
        for (long i = 0; i < n; i++) acc += p[i] * v[i * stride + d];
        out[d] = acc;
    }
}

static const vld_kernel_table KN(table) = {
    .path = PATH_ID,
    .name = PATH_NAME,
    .dot = KN(dot),
    .sum = KN(sum),
    .max = KN(max),
    .scaled_exp = KN(scaled_exp),
    .axpy = KN(axpy),
    .softmax = KN(softmax),
    .gelu_fwd = KN(gelu_fwd),
    .gelu_bwd = KN(gelu_bwd),
    .swiglu_fwd = KN(swiglu_fwd),
    .swiglu_bwd = KN(swiglu_bwd),
    .layernorm_fwd = KN(layernorm_fwd),
    .layernorm_bwd = KN(layernorm_bwd),
    .rmsnorm_fwd = KN(rmsnorm_fwd),
    .rmsnorm_bwd = KN(rmsnorm_bwd),
    .adamw = KN(adamw),
    .attn_decode = KN(attn_decode),
};

#undef vf
#undef vfu
#undef vi
#undef LD
#undef ST
#undef GELU_K
