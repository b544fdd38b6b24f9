/* error.c: thread-local last-error message (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DUET_ERROR_MAX 1024
static _Thread_local char last_error[DUET_ERROR_MAX];

int duet_errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

int duet_error_prefix(const char *fmt, ...)
{
    char old[DUET_ERROR_MAX], prefix[DUET_ERROR_MAX];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(last_error, sizeof last_error, "%s%s", prefix, old);
    return -1;
}

const char *duet_error(void) { return last_error; }

void duet_error_clear(void) { last_error[0] = '\0'; }
