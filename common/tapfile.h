/* tapfile.h: a tap sink that records every tap a backend reports (docs/design.md's tap names), in forward
 * order, and the golden file format that stores them: safetensors, one fp32 [rows, cols] tensor per
 * tap in forward order, __metadata__ saying how it was made (model id and sha256, token ids, mode,
 * backend, threads, BLAS, duet version). Also: run a prompt through a backend with the sink attached. */
#ifndef DUET_TAPFILE_H
#define DUET_TAPFILE_H

#include "backend.h"

#include <stdint.h>

typedef struct duet_tap {
    char *name;
    int64_t rows, cols;
    float *data; /* [rows, cols] row-major, owned */
} duet_tap;

typedef struct duet_tapfile {
    duet_tap *taps; /* forward order */
    int n, cap;
    char **meta;    /* key, value, key, value, ... */
    int n_meta;
    char *error;    /* first error inside the sink (out of memory, a tap reported twice); NULL when none */
} duet_tapfile;

duet_tapfile *duet_tapfile_new(void);
void duet_tapfile_free(duet_tapfile *f);

/* The sink: a duet_tap_fn; ctx is the duet_tapfile. Copies the data. Errors are kept in f->error. */
void duet_tapfile_sink(void *ctx, const char *name, const float *data, int64_t rows, int64_t cols);

const duet_tap *duet_tapfile_find(const duet_tapfile *f, const char *name);
int duet_tapfile_set_meta(duet_tapfile *f, const char *key, const char *value);
const char *duet_tapfile_meta(const duet_tapfile *f, const char *key); /* NULL when absent */

/* Writes f as safetensors (fails when the sink recorded an error). 0 or -1 + duet_error(). */
int duet_tapfile_save(const duet_tapfile *f, const char *path);
/* Reads a tap file: every tensor must be 2-D F32; taps keep the file's order. NULL + duet_error(). */
duet_tapfile *duet_tapfile_load(const char *path);

/* Token ids as the metadata stores them ("1,2,3") and back. The parser also takes "[1, 2, 3]" and
 * "1 2 3" (commas and whitespace separate; an empty list gives n = 0). *ids malloc'ed. */
char *duet_ids_format(const int *ids, int n);
int duet_ids_parse(const char *s, int **ids, int *n);

/* sha256 of a file's bytes as 64 lowercase hex digits + NUL. 0 or -1 + duet_error(). */
int duet_sha256_file(const char *path, char hex[65]);

/* Runs ids[n] as one prefill (positions 0..n-1, sequence 0, logits for every token) through backend
 * `backend`, made by `create` (engine/registry.h's duet_backend_create), in `mode` with `threads` CPU threads (ref), recording every tap; fills the metadata
 * model_id (the model folder's base name), model_sha256 (of model.safetensors), model_synth (when
 * duet synth made the model), token_ids, mode, backend, threads. The caller adds what only it knows
 * (duet_version, blas). quant: the calibrated modes to run in (its kv_mode, kv_scales and sq; NULL: none).
 * NULL + duet_error(). */
duet_tapfile *duet_tapfile_run(const duet_model *m, duet_backend_create_fn create, const char *backend,
                               const char *mode, int threads, const duet_backend_opts *quant, const int *ids, int n);

#endif
