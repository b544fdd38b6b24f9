/* model_quant.h: inside the model (not for backends): the tensors a model owns for its quantized
 * weights (struct duet_model_quant of model.h), shared by duet_model_quantize (model_quant.c), the
 * planar loader (model_planar.c) and duet_model_close. */
#ifndef DUET_MODEL_QUANT_H
#define DUET_MODEL_QUANT_H

#include "model.h"

#define DUET_N_LINEAR 7 /* q, k, v, o, gate, up, down */

/* One quantized tensor: t, and what of it the model owns (NULL: points into a mapped file). */
typedef struct duet_qtensor {
    st_tensor t;      /* t.name is owned */
    void *data;       /* codes or GGUF blocks */
    uint16_t *scales; /* planar: (N, K / group) fp16 */
    uint8_t *zeros;   /* int4-g*: (N, K / group) */
} duet_qtensor;

struct duet_model_quant {
    duet_qtensor *t;       /* [n] of cap */
    int n, cap;
    int quantized_on_load; /* 1: by duet_model_quantize; 0: as the file stores them */
};
typedef struct duet_model_quant duet_model_quant;

duet_model_quant *duet_model_quant_new(int cap);
void duet_model_quant_free(duet_model_quant *mq);
/* The next free slot, zeroed, its name a copy of `name`; NULL + duet_error() when full or out of memory. */
duet_qtensor *duet_model_quant_add(duet_model_quant *mq, const char *name);
/* The slot of linear weight k (0..6: q, k, v, o, gate, up, down) of a layer. */
const st_tensor **duet_layer_linear(duet_layer_weights *w, int k);

/* model_planar.c: the planar quantized weight <base>.qweight (+ .scales, .zeros; the layout is at the top
 * of model_planar.c) of shape (N, K), as a tensor m->quant owns; NULL + duet_error() naming the file and
 * tensor for anything inconsistent (also when <base>.qweight is absent: then <base>.weight is missing). */
const st_tensor *duet_planar_load(duet_model *m, const char *base, int64_t N, int64_t K);
/* m->weights from the loaded linear weights: their mode (duet_qmode_of) when all 7 L share one, else
 * DUET_Q_NONE (plain float weights, or a mix such as Q4_1 with some Q8_0 layers). */
void duet_model_set_weights_mode(duet_model *m);

#endif
