#!/usr/bin/env python3
"""make_dtype_vectors.py: writes tests/data/dtype/<TYPE>.bin, the oracle of tests/test_dtype.c.

For every float storage type of common/dtype.h: random blocks (random codes, random scale bytes)
plus blocks whose fp16 scales are the extreme values (fp16 max, smallest and largest subnormal,
+-0, +-inf, quiet and signalling NaNs with payloads) in every pairing, and the fp32 values that the
`gguf` Python package's gguf.quants.dequantize makes of them. F64 and F8_E4M3 have no dequantizer in
that package: F64 uses numpy's float64 -> float32 cast (round to nearest even), F8_E4M3 (OCP e4m3fn)
exact arithmetic on its fields. The test compares the bits of every float, NaNs included.

File layout (little-endian): b"DUETDTV1", the type name in 8 bytes (NUL-padded), u32 elements per
block, u32 bytes per block, u64 block count, the raw blocks, then block count x elements fp32 values.

Run from the source tree: python3 scripts/make_dtype_vectors.py [outdir] (default tests/data/dtype).
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
import gguf.quants

SEED = 20250611

# fp16 bit patterns of the extreme scales
SPECIAL_F16 = [0x7bff, 0xfbff, 0x0001, 0x8001, 0x03ff, 0x0400, 0x0000, 0x8000, 0x3c00,
               0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe3f]
# for the K types' second scale (dmin), a subset, to keep the files small
SPECIAL_F16_SHORT = [0x7bff, 0x0001, 0x0000, 0x7c00, 0x7e00, 0xfe3f]

# (name, ggml type, offsets of fp16 scales inside a block: the first is paired with SPECIAL_F16,
#  the second with SPECIAL_F16 (32-element types) or SPECIAL_F16_SHORT (K types))
BLOCK_TYPES = [
    ("Q4_0", T.Q4_0, [0]),
    ("Q4_1", T.Q4_1, [0, 2]),
    ("Q5_0", T.Q5_0, [0]),
    ("Q5_1", T.Q5_1, [0, 2]),
    ("Q8_0", T.Q8_0, [0]),
    ("Q4_K", T.Q4_K, [0, 2]),
    ("Q5_K", T.Q5_K, [0, 2]),
    ("Q6_K", T.Q6_K, [208]),
]


def write(path, name, block, block_bytes, raw, out):
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(-1)
    out = np.ascontiguousarray(out, dtype=np.float32).reshape(-1)
    n_blocks = raw.size // block_bytes
    assert raw.size == n_blocks * block_bytes and out.size == n_blocks * block
    with open(path, "wb") as f:
        f.write(b"DUETDTV1")
        f.write(name.encode().ljust(8, b"\0"))
        f.write(struct.pack("<IIQ", block, block_bytes, n_blocks))
        f.write(raw.tobytes())
        f.write(out.astype("<f4").tobytes())


def block_vectors(rng, name, qtype, scale_offs):
    block, block_bytes = GGML_QUANT_SIZES[qtype]
    rows = []
    second = SPECIAL_F16 if block == 32 else SPECIAL_F16_SHORT
    pairs = [(a, b) for a in SPECIAL_F16 for b in (second if len(scale_offs) > 1 else [None])]
    for a, b in pairs:
        blk = rng.integers(0, 256, block_bytes, dtype=np.uint8)
        blk[scale_offs[0]:scale_offs[0] + 2] = np.frombuffer(struct.pack("<H", a), np.uint8)
        if b is not None:
            blk[scale_offs[1]:scale_offs[1] + 2] = np.frombuffer(struct.pack("<H", b), np.uint8)
        rows.append(blk)
    # random blocks with finite, modest scales (random codes and sub-scales)
    for _ in range(24):
        blk = rng.integers(0, 256, block_bytes, dtype=np.uint8)
        for off in scale_offs:
            s = np.float16(rng.standard_normal() * 0.05)
            blk[off:off + 2] = np.frombuffer(s.tobytes(), np.uint8)
        rows.append(blk)
    # entirely random bytes (any fp16 scale, NaNs and infinities now and then)
    for _ in range(16):
        rows.append(rng.integers(0, 256, block_bytes, dtype=np.uint8))
    raw = np.stack(rows)
    out = gguf.quants.dequantize(raw, qtype)
    assert out.dtype == np.float32 and out.shape == (raw.shape[0], block)
    return block, block_bytes, raw, out


def f8e4m3_exact(v):
    s = -1.0 if v & 0x80 else 1.0
    e, m = (v >> 3) & 0xf, v & 7
    if e == 0xf and m == 7:
        return float("nan") * s
    if e == 0:
        return s * m * 2.0 ** -9
    return s * (1 + m / 8) * 2.0 ** (e - 7)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "data", "dtype")
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(SEED)

    # plain types through gguf.quants.dequantize
    f32 = np.concatenate([rng.integers(0, 2 ** 32, 512, dtype=np.uint64).astype(np.uint32),
                          np.array([0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 1,
                                    0x807fffff], np.uint32)])
    raw = f32.view(np.uint8)
    write(os.path.join(outdir, "F32.bin"), "F32", 1, 4, raw, gguf.quants.dequantize(raw, T.F32))
    f16 = np.concatenate([np.arange(0, 65536, dtype=np.uint32).astype(np.uint16)])  # every fp16
    raw = f16.view(np.uint8)
    write(os.path.join(outdir, "F16.bin"), "F16", 1, 2, raw, gguf.quants.dequantize(raw, T.F16))
    bf16 = np.arange(0, 65536, dtype=np.uint32).astype(np.uint16)  # every bf16
    raw = bf16.view(np.uint8)
    write(os.path.join(outdir, "BF16.bin"), "BF16", 1, 2, raw,
          gguf.quants.dequantize(raw, T.BF16).reshape(-1))

    # F64: numpy's cast (not a gguf.quants type)
    f64 = np.concatenate([rng.standard_normal(256) * 10.0 ** rng.integers(-45, 39, 256),
                          np.array([0.0, -0.0, np.inf, -np.inf, 3.4028235677973366e38, 3.4028235677973362e38,
                                    1e39, 1.401298464324817e-45, 7.006492321624085e-46, 7.006492321624087e-46,
                                    1.0 + 2.0 ** -24, 1.0 + 3 * 2.0 ** -24])])
    with np.errstate(over="ignore"):
        write(os.path.join(outdir, "F64.bin"), "F64", 1, 8, f64.astype("<f8").view(np.uint8), f64.astype(np.float32))

    # F8_E4M3: every code, exact
    codes = np.arange(256, dtype=np.uint8)
    vals = np.array([f8e4m3_exact(int(v)) for v in codes], dtype=np.float64).astype(np.float32)
    # the NaNs: duet makes the quiet NaN of the sign (0x7fc00000 / 0xffc00000)
    bits = vals.view(np.uint32)
    bits[codes == 0x7f] = 0x7fc00000
    bits[codes == 0xff] = 0xffc00000
    write(os.path.join(outdir, "F8_E4M3.bin"), "F8_E4M3", 1, 1, codes, bits.view(np.float32))

    for name, qtype, offs in BLOCK_TYPES:
        with np.errstate(invalid="ignore", over="ignore"):
            block, block_bytes, raw, out = block_vectors(rng, name, qtype, offs)
        write(os.path.join(outdir, name + ".bin"), name, block, block_bytes, raw, out)
        print(f"{name}: {raw.shape[0]} blocks, {int(np.isnan(out).sum())} NaN outputs", file=sys.stderr)


if __name__ == "__main__":
    main()
