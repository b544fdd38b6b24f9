#!/usr/bin/env python3
"""make_fp16_vectors.py: writes fp16_bf16_vectors.txt, the oracle for tests/test_safetensors.c.
fp16 values come from numpy (float32 -> float16 is IEEE round-to-nearest-even); bf16 from exact
rational arithmetic (nearest bf16, ties to even), independent of duet's bit tricks.
Line: f32_bits f16_bits bf16_bits (hex), one per input float. Run: python3 make_fp16_vectors.py > ..."""
import struct
from fractions import Fraction
import numpy as np


def f32(bits):
    return struct.unpack('<f', struct.pack('<I', bits))[0]


def bf16_of(bits):
    x = f32(bits)
    if x != x:
        return None  # NaN: only "is a NaN" is checked
    if x in (float('inf'), float('-inf')):
        return (bits >> 16) & 0xffff
    # candidates: truncation and next bf16 up in magnitude; pick nearest, ties to even mantissa
    lo = bits >> 16
    hi = lo + 1
    v = Fraction(x)
    vlo = Fraction(f32(lo << 16))
    hb = hi << 16
    if (hb & 0x7f800000) == 0x7f800000:
        # rounding up overflows to inf: inf is nearer when |x| >= max + half ulp
        maxv = Fraction(f32(lo << 16))
        ulp = Fraction(2) ** (127 - 7)
        return hi if abs(v) >= abs(maxv) + ulp / 2 else lo
    vhi = Fraction(f32(hb))
    dlo, dhi = abs(v - vlo), abs(vhi - v)
    if dlo < dhi:
        return lo
    if dhi < dlo:
        return hi
    return lo if lo % 2 == 0 else hi


def main():
    vals = [0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000,
            0x7f800001, 0x7f7fffff, 0x477fe000, 0x477fefff, 0x477ff000, 0x47800000,  # fp16 max region
            0x38800000, 0x387fffff, 0x33800000, 0x33000000, 0x33000001, 0x32ffffff,  # fp16 subnormal edges
            0x00000001, 0x007fffff, 0x00800000, 0x3f801000, 0x3f803000, 0x3f801001,  # ties for fp16
            0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x7f7f8000, 0x7f7f7fff,  # ties for bf16
            0x34000000, 0x34001000, 0x34003000, 0x35400000]
    # fp16 subnormal ties: k + 1/2 units of 2^-24
    for k in range(0, 16):
        vals.append(struct.unpack('<I', struct.pack('<f', (k + 0.5) * 2.0 ** -24))[0])
    rng = np.random.default_rng(20240607)
    vals += [int(b) for b in rng.integers(0, 2 ** 32, 200, dtype=np.uint64)]
    vals += [int(b) for b in (rng.standard_normal(100).astype(np.float32) * 1000).view(np.uint32)]
    vals += [int(b) for b in (rng.standard_normal(60).astype(np.float32) * 1e-6).view(np.uint32)]
    for b in vals:
        b &= 0xffffffff
        h = int(np.array([f32(b)], dtype=np.float32).astype(np.float16).view(np.uint16)[0])
        bf = bf16_of(b)
        print('%08x %04x %s' % (b, h, 'nan' if bf is None else '%04x' % bf))


if __name__ == '__main__':
    import warnings
    warnings.simplefilter('ignore')
    main()
