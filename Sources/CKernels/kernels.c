// kernels.c: the three builds of kernels_body.h and the run-time choice between them.

#include "vld_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VW 4
#define SFX generic
#define VLD_TARGET
#define PATH_ID VLD_PATH_GENERIC
#define PATH_NAME "generic"
#include "kernels_body.h"
#undef VW
#undef SFX
#undef VLD_TARGET
#undef PATH_ID
#undef PATH_NAME

#if defined(__x86_64__)
#define VW 8
#define SFX avx2
#define VLD_TARGET __attribute__((target("avx2,fma")))
#define PATH_ID VLD_PATH_AVX2
#define PATH_NAME "avx2"
#include "kernels_body.h"
#undef VW
#undef SFX
#undef VLD_TARGET
#undef PATH_ID
#undef PATH_NAME

#define VW 16
#define SFX avx512
#define VLD_TARGET __attribute__((target("avx512f,avx2,fma")))
#define PATH_ID VLD_PATH_AVX512
#define PATH_NAME "avx512"
#include "kernels_body.h"
#endif

// Only x86-64 has the wider paths; elsewhere the generic build (the compiler's own vectors of 4)
// is the one path.
static int cpu_has(int path) {
    switch (path) {
    case VLD_PATH_GENERIC: return 1;
#if defined(__x86_64__)
    case VLD_PATH_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case VLD_PATH_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

const vld_kernel_table *vld_kernels_for(int path) {
#if defined(__x86_64__)
    __builtin_cpu_init();
#endif
    if (!cpu_has(path)) return NULL;
    switch (path) {
    case VLD_PATH_GENERIC: return &table_generic;
#if defined(__x86_64__)
    case VLD_PATH_AVX2: return &table_avx2;
    case VLD_PATH_AVX512: return &table_avx512;
#endif
    default: return NULL;
    }
}

static const vld_kernel_table *active;

__attribute__((constructor)) static void vld_kernels_init(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
#endif
    int best = cpu_has(VLD_PATH_AVX512) ? VLD_PATH_AVX512 : cpu_has(VLD_PATH_AVX2) ? VLD_PATH_AVX2 : VLD_PATH_GENERIC;
    const char *want = getenv("VLD_KERNELS");
    if (want && *want) {
        int path = !strcmp(want, "generic") ? VLD_PATH_GENERIC
                   : !strcmp(want, "avx2")  ? VLD_PATH_AVX2
                   : !strcmp(want, "avx512") ? VLD_PATH_AVX512
                                             : -1;
        if (path < 0) {
            fprintf(stderr, "vld: VLD_KERNELS must be generic, avx2 or avx512; using the CPU's best\n");
        } else if (!cpu_has(path)) {
            fprintf(stderr, "vld: VLD_KERNELS asks for a path this CPU lacks; using the CPU's best\n");
        } else {
            best = path;
        }
    }
    active = vld_kernels_for(best);
}

const vld_kernel_table *vld_kernels(void) {
    if (!active) vld_kernels_init();
    return active;
}
