/* fuzz_util.h: what the libFuzzer harnesses of tests/fuzz share: the fuzz input as a file (for the
 * readers that take a path), the input as a NUL-terminated string (for the text parsers), a path
 * under the source tree, and an invariant check that aborts (so libFuzzer reports it as a crash). */
#ifndef DUET_FUZZ_UTIL_H
#define DUET_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Writes data[size] into this process's anonymous in-memory file (memfd, made on the first call) and
 * returns a path that opens it ("/proc/self/fd/N"). The same file is rewritten by every call. */
const char *fuzz_file(const uint8_t *data, size_t size);

/* data[size] + NUL, malloc'ed (free it). Aborts when out of memory. */
char *fuzz_strdup(const uint8_t *data, size_t size);

/* Path of `rel` under the source tree ($DUET_SRCDIR, set by `make fuzz`, else "."); malloc'ed. */
char *fuzz_src_path(const char *rel);

/* Reads a whole file into memory (malloc'ed, NUL-terminated; *len bytes); aborts when it cannot,
 * since a harness without its fixture is a broken setup. */
char *fuzz_read(const char *path, size_t *len);

/* An invariant of the code under test: when `cond` is false, prints where and aborts. */
#define FUZZ_CHECK(cond)                                                                                       \
    ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
