/* test_gpu_util.h: the start every GPU suite shares: skip (exit 77) without a CUDA device, and run the
 * Check tests in-process (CUDA state does not survive fork()). */
#ifndef DUET_TEST_GPU_UTIL_H
#define DUET_TEST_GPU_UTIL_H

#include "gpu/gpu.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

/* 0 when a CUDA device is there (and CK_FORK is set to no); otherwise prints SKIP with the reason and
 * returns 1: main then returns TEST_EXIT_SKIP. */
static inline int test_gpu_absent(void)
{
    char why[256];
    if (gpu_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "SKIP: no CUDA device: %s\n", why);
        return 1;
    }
    setenv("CK_FORK", "no", 1);
    return 0;
}

#endif
