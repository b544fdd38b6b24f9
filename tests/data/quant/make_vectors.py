#!/usr/bin/env python3
"""make_vectors.py: the GGUF quantization vectors of tests/test_quant (common/quant.c's q8_0, q4_0, q4_1).

Writes, next to this script:
  input.f32   "DUETQV1\\0", rows (u32 LE), cols (u32 LE), then rows x cols float32 LE (row-major)
  Q8_0.bin, Q4_0.bin, Q4_1.bin   the GGUF blocks of the whole matrix, exactly as the `gguf` Python
              package's gguf.quants.quantize makes them (llama.cpp's reference quantizers in numpy)

Run: python3 tests/data/quant/make_vectors.py   (numpy and gguf; made with gguf 0.19.0, numpy 2.4.6)
The output is a pure function of the seed below.

The rows are 8 x 256 (64 blocks of 32): edge blocks first (rounding ties for q8_0's roundf, q4_0's
+8.5 and q4_1's +0.5 offsets landing on whole numbers, all-zero and constant blocks, negative- and
positive-dominated blocks and equal-magnitude maxima of both signs for q4_0's signed max, fp16-subnormal
scales, scales that underflow fp16 to zero, large values), then random normal blocks at several scales.

gguf-py agrees with llama.cpp's C reference (quantize_row_*_ref) bit for bit except on the sign of a
zero: C takes Q4_0's max from the first strictly larger |x| starting at +0 (an all-zero block gives
d = -0 even when x[0] is -0.0; numpy's argmax takes x[0] itself) and Q4_1's min/max by strict comparisons
(the first of equal signed zeros wins; numpy's min/max may pick either). duet follows the C rule
(quant.h), so these inputs hold no negative zero; tests/test_quant checks the -0.0 cases by hand.
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

SEED = 20261201
ROWS, COLS = 8, 256


def edge_blocks(rng):
    b = []
    half = np.arange(-127, 128, 8, dtype=np.float32)[:31] + np.float32(0.5)  # k + 0.5 ties
    b.append(np.concatenate([[127.0], half]))                 # q8_0: d = 1, every other value a tie
    b.append(-np.concatenate([[127.0], half[::-1]]))
    b.append(np.concatenate([[-8.0], np.arange(-7.5, 8.0, 0.5)[:31]]))  # q4_0: d = 1 (negative max), ties
    b.append(np.concatenate([[8.0], np.arange(-7.5, 8.0, 0.5)[:31]]))   # q4_0: d = -1 (positive max)
    b.append(np.concatenate([[-1.0, 14.0], np.arange(-1.0, 14.0, 0.5)]))  # q4_1: d = 1, min -1, ties
    b.append(np.concatenate([[3.0, -3.0], rng.uniform(-2.9, 2.9, 30)]))   # equal |max|, positive first
    b.append(np.concatenate([[-3.0, 3.0], rng.uniform(-2.9, 2.9, 30)]))   # equal |max|, negative first
    b.append(np.zeros(32))                                    # all zero
    b.append(np.full(32, 0.3))                                # constant blocks
    b.append(np.full(32, -2.75))
    b.append(-np.abs(rng.normal(size=32)))                    # all negative
    b.append(np.abs(rng.normal(size=32)))                     # all positive (min > 0)
    v = np.abs(rng.normal(size=32)); v[5] = 0.0; b.append(v)  # min exactly 0
    b.append(rng.normal(size=32) * 1e-6)                      # fp16-subnormal scales
    b.append(rng.normal(size=32) * 1e-9)                      # scales underflow fp16 to 0
    b.append(rng.normal(size=32) * 3e4)                       # large (the scales still fit fp16)
    v = rng.normal(size=32); v[7] = -9.0; b.append(v)         # one negative outlier
    v = rng.normal(size=32); v[20] = 9.0; b.append(v)         # one positive outlier
    v = rng.normal(size=32) * 0.02; v[:4] = 0.0; b.append(v)  # LLM-sized weights with zeros
    return [np.asarray(x, dtype=np.float32) for x in b]


def main():
    rng = np.random.default_rng(SEED)
    blocks = edge_blocks(rng)
    n_blocks = ROWS * COLS // 32
    scales = [0.02, 0.1, 1.0, 5.0]
    while len(blocks) < n_blocks:
        blocks.append((rng.normal(size=32) * scales[len(blocks) % len(scales)]).astype(np.float32))
    x = np.concatenate(blocks).astype(np.float32).reshape(ROWS, COLS)
    x = np.where(x == 0, np.float32(0.0), x).astype(np.float32)  # no -0.0 (see above)
    assert not np.signbit(x[x == 0]).any()
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "input.f32"), "wb") as f:
        f.write(b"DUETQV1\0" + np.array([ROWS, COLS], dtype="<u4").tobytes() + x.astype("<f4").tobytes())
    for qt in (T.Q8_0, T.Q4_0, T.Q4_1):
        with open(os.path.join(here, qt.name + ".bin"), "wb") as f:
            f.write(quantize(x, qt).tobytes())


if __name__ == "__main__":
    main()
