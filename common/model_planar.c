/* model_planar.c: the loader of duet's planar quantized linear weights in a Hugging Face folder (what
 * `duet quantize --weights int8|int4|int4-g128|int4-g64` writes). The on-disk layout, for each quantized
 * linear <name> (e.g. model.layers.0.self_attn.q_proj), in place of <name>.weight:
 *
 *   <name>.qweight  int8:   I8 (N, K)    the codes q, row-major
 *                   int4*:  U8 (N, K/2)  two uint4 codes a byte: element 2j in the low nibble of byte j
 *                                        of its row, 2j+1 in the high nibble
 *   <name>.scales   F16 (N, K/G)         one scale per group of G elements of a row (G = K: per row)
 *   <name>.zeros    U8 (N, K/G)          int4-g* only: the zero point of each group, 0..15
 *
 * and the file's __metadata__ says the mode: "duet.weights" = int8 | int4 | int4-g128 | int4-g64, and
 * "duet.group_size" = G ("128", "64") or "row" for the per-row modes. Values (quant.h):
 * int8 w = s q; int4 w = s (q - 8); int4-g* w = s (q - z). The tensor built here points into the mapped
 * file (codes, zero points; scales too unless misaligned for uint16 reads, then copied), dtype ST_QI8 or
 * ST_QU4 with shape (N, K) in elements. Every inconsistency is an error naming the file and tensor. */
#include "model_quant.h"
#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const st_file *file_of(const st_set *s, const st_tensor *t)
{
    for (int i = 0; i < st_set_nfiles(s); i++)
        if (!strcmp(st_path(st_set_file(s, i)), t->file)) return st_set_file(s, i);
    return NULL;
}

/* The planar mode of f's __metadata__ (duet.weights, duet.group_size agreeing with it); for errors,
 * `what` is the tensor that needs it. */
static int file_mode(const st_file *f, const char *what, duet_qmode *out)
{
    const char *path = st_path(f);
    const char *ms = st_meta(f, "duet.weights");
    if (!ms)
        return duet_errorf("%s: tensor '%s' is quantized but __metadata__ has no 'duet.weights' (the mode: int8, "
                           "int4, int4-g128 or int4-g64)", path, what);
    duet_qmode q;
    const duet_qmode_info *info;
    if (duet_qmode_parse(ms, &q) || q == DUET_Q_NONE || !(info = duet_qmode_get(q)))
        return duet_errorf("%s: __metadata__ 'duet.weights' = '%s' is not a mode (safetensors hold the planar modes: "
                           "int8, int4, int4-g128, int4-g64)", path, ms);
    if (info->dtype != ST_QI8 && info->dtype != ST_QU4)
        return duet_errorf("%s: __metadata__ 'duet.weights' = '%s' is a GGUF block mode; safetensors hold the planar "
                           "modes only (int8, int4, int4-g128, int4-g64)", path, ms);
    const char *gs = st_meta(f, "duet.group_size");
    char want[16];
    if (info->group) snprintf(want, sizeof want, "%d", info->group);
    else snprintf(want, sizeof want, "row");
    if (!gs) return duet_errorf("%s: __metadata__ has 'duet.weights' = '%s' but no 'duet.group_size' (expected '%s')",
                                path, ms, want);
    if (strcmp(gs, want))
        return duet_errorf("%s: __metadata__ 'duet.group_size' = '%s' disagrees with 'duet.weights' = '%s' (group %s)",
                           path, gs, ms, want);
    *out = q;
    return 0;
}

/* The companion tensor `<base>.<suffix>`: present, of dtype `dt`, shape (N, G). */
static const st_tensor *companion(const st_set *s, const char *file, const char *base, const char *suffix, st_dtype dt,
                                  int64_t N, int64_t ngroups, int64_t K, int group, const char *mode)
{
    char name[320];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    const st_tensor *t = st_set_find(s, name);
    if (!t) {
        duet_errorf("%s: missing tensor '%s' (the %s of the %s weight '%s.qweight')", file, name,
                    dt == ST_F16 ? "fp16 scales" : "zero points", mode, base);
        return NULL;
    }
    if (t->dtype != dt) {
        duet_errorf("%s: tensor '%s': dtype %s, expected %s", t->file, name, st_dtype_name(t->dtype), st_dtype_name(dt));
        return NULL;
    }
    if (t->ndim != 2 || t->shape[0] != N || t->shape[1] != ngroups) {
        char got[64] = "";
        for (int d = 0; d < t->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)t->shape[d]);
        duet_errorf("%s: tensor '%s': shape [%s], expected [%lld, %lld] (K %lld in groups of %d for mode %s)", t->file,
                    name, got, (long long)N, (long long)ngroups, (long long)K, group, mode);
        return NULL;
    }
    return t;
}

const st_tensor *duet_planar_load(duet_model *m, const char *base, int64_t N, int64_t K)
{
    char name[320];
    snprintf(name, sizeof name, "%s.qweight", base);
    const st_tensor *qt = st_set_find(m->st, name);
    if (!qt) {
        duet_errorf("%s: missing tensor '%s.weight' (nor a quantized '%s.qweight')", m->path, base, base);
        return NULL;
    }
    const st_file *f = file_of(m->st, qt);
    duet_qmode mode = DUET_Q_NONE;
    if (!f || file_mode(f, name, &mode)) return NULL;
    const duet_qmode_info *info = duet_qmode_get(mode);
    char what[640];
    snprintf(what, sizeof what, "%s: tensor '%s'", qt->file, name);
    int group = duet_qmode_check_k(mode, K, what);
    if (group < 0) return NULL;
    st_dtype want = info->bits == 8 ? ST_I8 : ST_U8;
    if (qt->dtype != want) {
        duet_errorf("%s: tensor '%s': dtype %s, but mode %s ('duet.weights') stores its codes as %s", qt->file, name,
                    st_dtype_name(qt->dtype), info->name, st_dtype_name(want));
        return NULL;
    }
    int64_t cols = info->bits == 8 ? K : K / 2;
    if (qt->ndim != 2 || qt->shape[0] != N || qt->shape[1] != cols) {
        char got[64] = "";
        for (int d = 0; d < qt->ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "%lld", (long long)qt->shape[d]);
        duet_errorf("%s: tensor '%s': shape [%s], expected [%lld, %lld] (mode %s: %s)", qt->file, name, got, (long long)N,
                    (long long)cols, info->name, info->bits == 8 ? "one int8 code per weight" : "two 4-bit codes a byte");
        return NULL;
    }
    int64_t ngroups = K / group;
    const st_tensor *sc = companion(m->st, qt->file, base, "scales", ST_F16, N, ngroups, K, group, info->name);
    if (!sc) return NULL;
    const st_tensor *zt = NULL;
    snprintf(name, sizeof name, "%s.zeros", base);
    if (info->has_zeros) {
        if (!(zt = companion(m->st, qt->file, base, "zeros", ST_U8, N, ngroups, K, group, info->name))) return NULL;
        const uint8_t *z = zt->data;
        for (int64_t i = 0; i < N * ngroups; i++)
            if (z[i] > 15) {
                duet_errorf("%s: tensor '%s': zero point %u at [%lld, %lld] is out of range 0..15", zt->file, name, z[i],
                            (long long)(i / ngroups), (long long)(i % ngroups));
                return NULL;
            }
    } else if (st_set_find(m->st, name)) {
        duet_errorf("%s: tensor '%s': mode %s has a fixed zero point, not a zeros tensor", qt->file, name, info->name);
        return NULL;
    }
    if (!m->quant && !(m->quant = duet_model_quant_new(DUET_N_LINEAR * m->cfg.n_layers))) return NULL;
    duet_qtensor *q = duet_model_quant_add(m->quant, qt->name);
    if (!q) return NULL;
    const uint16_t *scales = sc->data;
    if ((uintptr_t)sc->data % sizeof(uint16_t)) { /* safetensors does not align tensors: copy for uint16 reads */
        if (!(q->scales = malloc(sc->nbytes))) {
            duet_errorf("%s: tensor '%s': out of memory", sc->file, sc->name);
            return NULL;
        }
        memcpy(q->scales, sc->data, sc->nbytes);
        scales = q->scales;
    }
    q->t.dtype = info->dtype;
    q->t.ndim = 2;
    q->t.shape[0] = N;
    q->t.shape[1] = K;
    q->t.numel = N * K;
    q->t.data = qt->data;
    q->t.nbytes = qt->nbytes;
    q->t.file = qt->file;
    q->t.q = (st_quant){.group = group, .scales = scales, .zeros = zt ? zt->data : NULL};
    if (st_dtype_bytes(q->t.dtype, q->t.numel) != q->t.nbytes) {
        duet_errorf("%s: tensor '%s': %zu bytes for %lld x %lld codes", qt->file, qt->name, qt->nbytes, (long long)N,
                    (long long)K);
        return NULL;
    }
    return &q->t;
}
