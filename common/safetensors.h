/* safetensors.h: bounds-checked reader (mmap; one file or a sharded index) and writer of the
 * safetensors format: 8-byte little-endian header length, JSON header, raw little-endian data.
 * Every offset, shape and dtype is validated when the file is opened, before any data is used. */
#ifndef DUET_SAFETENSORS_H
#define DUET_SAFETENSORS_H

#include "dtype.h"

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

/* The scales of a planar quantized tensor (dtype ST_QI8 / ST_QU4; quant.h has the layout): group
 * elements per scale along a row, scales (rows, cols / group) fp16, zeros (rows, cols / group) uint8
 * or NULL (the mode's fixed zero point). Little-endian, like the data. */
typedef struct st_quant {
    int group;
    const uint16_t *scales;
    const uint8_t *zeros;
} st_quant;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;     /* inside the mapping; little-endian */
    size_t nbytes;        /* st_dtype_bytes(dtype, numel) */
    const char *file;     /* path of the file that holds it */
    st_quant q;           /* ST_QI8 / ST_QU4 only */
} st_tensor;

typedef struct st_file st_file;

/* Opens and validates one .safetensors file. NULL + duet_error() naming the file and field. */
st_file *st_open(const char *path);
void st_close(st_file *f);
int st_count(const st_file *f);
/* Tensors in data-offset order (for files duet writes, the order they were added). */
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);
/* __metadata__ value of `key`, or NULL. */
const char *st_meta(const st_file *f, const char *key);
const char *st_path(const st_file *f);

/* A model's weights: <dir>/model.safetensors, or the shards named by model.safetensors.index.json. */
typedef struct st_set st_set;
st_set *st_set_open(const char *dir);
void st_set_close(st_set *s);
const st_tensor *st_set_find(const st_set *s, const char *name);
/* The set's files (to walk every tensor: st_count / st_at of each). */
int st_set_nfiles(const st_set *s);
const st_file *st_set_file(const st_set *s, int i);

/* Bytes per element of a plain (one-element block) type; 0 for block types (use st_dtype_bytes). */
size_t st_dtype_size(st_dtype t);

/* Checks that t has exactly the given shape (ndim values in `shape`); error names file, tensor, shapes. */
int st_check_shape(const st_tensor *t, int ndim, const int64_t *shape);
/* Converts a tensor of any float type (F32, F16, BF16, F64, F8_E4M3 and the GGUF block types Q4_0 ..
 * Q6_K, through the dtype table; duet's planar ST_QI8 / ST_QU4 through quant.h with the tensor's
 * scales) to fp32 into out[numel]; integer and bool dtypes are an error naming the tensor. */
int st_to_f32(const st_tensor *t, float *out);

/* Writer: collects tensors (data copied) and metadata, then writes one file. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data);
int st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_save(st_writer *w, const char *path);
void st_writer_free(st_writer *w);

#endif
