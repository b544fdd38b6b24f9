/* file.h: reading a whole text file into memory (NUL-terminated), for the small inputs duet parses
 * itself (tolerance tables, prompts given with -f). "-" reads standard input. */
#ifndef DUET_FILE_H
#define DUET_FILE_H

#include <stddef.h>

/* Returns the malloc'ed contents (NUL-terminated; *len bytes, may be NULL), or NULL + duet_error()
 * naming the file. */
char *duet_read_file(const char *path, size_t *len);

#endif
