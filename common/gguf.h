/* gguf.h: bounds-checked reader (mmap) and writer of llama.cpp's GGUF format, versions 2 and 3.
 * File: magic "GGUF", u32 version, u64 tensor count, u64 kv count, the kv pairs (key string, u32
 * value type, value), the tensor infos (name string, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64
 * offset), padding to general.alignment (default 32), then the data section; strings are u64 length
 * + bytes (no NUL). Every count, string and array length, the alignment, each tensor's offset,
 * dimensions and byte size are validated (64-bit, overflow-checked) when the file is opened, before
 * any pointer into the mapping is handed out; tensors must lie inside the data section, aligned, and
 * must not overlap. Errors name the file, the key or tensor, and the value.
 *
 * Tensors are handed out as st_tensor (safetensors.h) with the dims in row-major order, i.e. GGUF's
 * ne[] reversed: a GGUF matrix with ne = {in, out} is shape {out, in}, as nn.Linear stores it. */
#ifndef DUET_GGUF_H
#define DUET_GGUF_H

#include "dtype.h"
#include "safetensors.h"

#include <stddef.h>
#include <stdint.h>

typedef enum gguf_vtype {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6,
    GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10, GGUF_I64 = 11, GGUF_F64 = 12
} gguf_vtype;

/* A string inside the mapping: not NUL-terminated. */
typedef struct gguf_str {
    const char *s;
    uint64_t len;
} gguf_str;

typedef struct gguf_file gguf_file;

/* Opens and validates path. NULL + duet_error() naming the file and what is wrong. A tensor of a
 * GGML type duet does not read is an error naming the tensor and the type. */
gguf_file *gguf_open(const char *path);
void gguf_close(gguf_file *f);
const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);

/* Metadata. Each getter returns 0 (found, *out set), 1 (key absent, *out untouched), or -1 +
 * duet_error() naming the file, key and its actual type when the value has the wrong type. */
int gguf_has_key(const gguf_file *f, const char *key);
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);  /* any integer type (u64 > INT64_MAX: -1) */
int gguf_get_float(const gguf_file *f, const char *key, double *out); /* F32 or F64 */
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
/* An array of strings: *items (n entries) is owned by f. */
int gguf_get_str_arr(const gguf_file *f, const char *key, const gguf_str **items, uint64_t *n);
/* An array of integers (any integer element type), converted to int64 into a malloc'ed *out (free it). */
int gguf_get_int_arr(const gguf_file *f, const char *key, int64_t **out, uint64_t *n);
/* An array of F32, converted into a malloc'ed *out (free it). */
int gguf_get_f32_arr(const gguf_file *f, const char *key, float **out, uint64_t *n);

/* The data alignment (general.alignment, else 32). */
uint32_t gguf_alignment(const gguf_file *f);
/* The kv pairs in file order: key, type, element type (the type itself for a scalar) and element
 * count (1 for a scalar) of pair i; any out pointer may be NULL. 0, or -1 when i is out of range. */
int gguf_n_kv(const gguf_file *f);
int gguf_kv_at(const gguf_file *f, int i, gguf_str *key, gguf_vtype *type, gguf_vtype *elem, uint64_t *n);
/* The same by key: 0, or 1 when absent. */
int gguf_key_type(const gguf_file *f, const char *key, gguf_vtype *type, gguf_vtype *elem, uint64_t *n);

/* Tensors, in file order. */
int gguf_n_tensors(const gguf_file *f);
const st_tensor *gguf_tensor_at(const gguf_file *f, int i);
const st_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Writer (version 3, alignment 32): collects metadata and tensors (data copied), then writes. */
typedef struct gguf_writer gguf_writer;
gguf_writer *gguf_writer_new(void);
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, size_t len);
int gguf_writer_set_str_arr(gguf_writer *w, const char *key, const char *const *s, const size_t *len, uint64_t n);
int gguf_writer_set_i32_arr(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
int gguf_writer_set_f32_arr(gguf_writer *w, const char *key, const float *v, uint64_t n);
/* Any fixed-size scalar type (not STRING or ARRAY): v points to a value of that C type (uint8_t for
 * BOOL, 0 or 1); and arrays of them (n elements). A key set twice is an error. */
int gguf_writer_set(gguf_writer *w, const char *key, gguf_vtype type, const void *v);
int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype type, const void *v, uint64_t n);
/* shape in row-major order (as st_tensor; 0 to 4 dims, each > 0); the innermost dim must be a multiple
 * of the type's block; the type must have a GGML id (not U8, BOOL, F8_E4M3). */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, st_dtype type, int ndim, const int64_t *shape,
                           const void *data);
int gguf_writer_save(gguf_writer *w, const char *path);
void gguf_writer_free(gguf_writer *w);

#endif
