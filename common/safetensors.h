/* safetensors.h: bounds-checked reader (mmap; one file or a sharded index) and writer of the
 * safetensors format: 8-byte little-endian header length, JSON header, raw little-endian data.
 * Every offset, shape and dtype is validated when the file is opened, before any data is used. */
#ifndef DUET_SAFETENSORS_H
#define DUET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I8, ST_U8, ST_I16, ST_I32, ST_I64, ST_F8_E4M3, ST_BOOL } st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;     /* inside the mapping; little-endian */
    size_t nbytes;
    const char *file;     /* path of the file that holds it */
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

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Checks that t has exactly the given shape (ndim values in `shape`); error names file, tensor, shapes. */
int st_check_shape(const st_tensor *t, int ndim, const int64_t *shape);
/* Converts an F32/F16/BF16 tensor to fp32 into out[numel]; other dtypes are an error naming the tensor. */
int st_to_f32(const st_tensor *t, float *out);

/* Writer: collects tensors (data copied) and metadata, then writes one file. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape, const void *data);
int st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_save(st_writer *w, const char *path);
void st_writer_free(st_writer *w);

/* fp16 / bf16 <-> fp32, round-to-nearest-even (shared by the loader, quantizers and the GPU tests). */
float duet_f16_to_f32(uint16_t h);
uint16_t duet_f32_to_f16(float f);
float duet_bf16_to_f32(uint16_t h);
uint16_t duet_f32_to_bf16(float f);

#endif
