#!/usr/bin/env python3
"""make_spm_gguf.py: a tokenizer-only GGUF with tokenizer.ggml.model "llama" written from a
SentencePiece tokenizer.model the way llama.cpp's converter writes one: every piece with its own
score and type (1 normal, 2 unknown, 3 control, 4 user defined, 6 byte), bos/eos/unk ids,
add_bos_token true, add_eos_token false, add_space_prefix = the model's add_dummy_prefix,
remove_extra_whitespaces = its remove_extra_whitespaces. tests/test_convert checks that duet's
merges rebuilt from these scores equal the tokenizer.json's (tests/data/gguf/stories260K_spm.gguf).

tokenizer.model is a protobuf ModelProto; the few fields needed are read here directly (no
sentencepiece or protobuf package): 1 pieces {1 piece, 2 score (f32), 3 type}, 2 trainer_spec
{40 unk_id, 41 bos_id, 42 eos_id}, 3 normalizer_spec {3 add_dummy_prefix, 4 remove_extra_whitespaces}.

Run from the source tree:
  python3 scripts/make_spm_gguf.py ../shared/data/stories260K/tokenizer.model tests/data/gguf/stories260K_spm.gguf
"""
import struct
import sys

import gguf


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """(field number, value) of a protobuf message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wire} not expected in a tokenizer.model")
        yield num, v


def read_model(path):
    pieces, trainer, norm = [], {}, {}
    for num, v in fields(open(path, "rb").read()):
        if num == 1:
            p = {"piece": "", "score": 0.0, "type": 1}
            for n, x in fields(v):
                if n == 1:
                    p["piece"] = x.decode("utf-8")
                elif n == 2:
                    p["score"] = struct.unpack("<f", x)[0]
                elif n == 3:
                    p["type"] = x
            pieces.append(p)
        elif num == 2:
            trainer = dict(fields(v))
        elif num == 3:
            norm = dict(fields(v))
    return pieces, trainer, norm


def main():
    src, out = sys.argv[1], sys.argv[2]
    pieces, trainer, norm = read_model(src)
    w = gguf.GGUFWriter(out, arch="llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([p["piece"].encode("utf-8") for p in pieces])
    w.add_token_scores([p["score"] for p in pieces])
    w.add_token_types([p["type"] for p in pieces])
    # proto defaults: unk 0, bos 1, eos 2; add_dummy_prefix true, remove_extra_whitespaces true
    w.add_unk_token_id(trainer.get(40, 0))
    w.add_bos_token_id(trainer.get(41, 1))
    w.add_eos_token_id(trainer.get(42, 2))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(bool(norm.get(3, 1)))
    w.add_remove_extra_whitespaces(bool(norm.get(4, 1)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{out}: {len(pieces)} pieces, add_space_prefix {bool(norm.get(3, 1))}, "
          f"remove_extra_whitespaces {bool(norm.get(4, 1))}")


if __name__ == "__main__":
    main()
