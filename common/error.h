/* error.h: the one error channel of libduet.
 * Library code never exits or prints: it records a message naming the file, field and value
 * with duet_errorf() and returns -1 (or NULL); the CLI prints duet_error() and decides to exit. */
#ifndef DUET_ERROR_H
#define DUET_ERROR_H

/* Records a printf-style message for the calling thread; always returns -1 so that
 * `return duet_errorf("...")` reads as a failing return. */
int duet_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prefixes the current message with more context ("loading X: " + old message); returns -1. */
int duet_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The last message recorded on this thread ("" when none). */
const char *duet_error(void);

void duet_error_clear(void);

#endif
