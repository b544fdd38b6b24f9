#!/bin/sh
# recipe.sh: regenerates golden/*.fp32.safetensors with the ref backend, single-threaded (run by
# `make golden`). Usage: recipe.sh DUET GOLDEN_DIR. Each golden is one synthetic model (made by
# `duet synth`, never committed: the file's model_synth metadata regenerates it byte for byte) and one
# fixed token-id prompt, run as one prefill.
set -eu
duet=$1
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
export OPENBLAS_NUM_THREADS=1

# name | synth options | prompt ids
while IFS='|' read -r name opts ids; do
    name=$(echo "$name" | tr -d " ")
    case $name in ''|\#*) continue ;; esac
    # shellcheck disable=SC2086 # opts is a list of flags
    "$duet" synth -o "$tmp/$name" $opts
    prompt=$(echo "$ids" | tr -d ' ')
    n=$(echo "$prompt" | tr ',' '\n' | wc -l | tr -d ' ')
    "$duet" golden -m "$tmp/$name" --ids "$prompt" --backend ref --mode fp32 --threads 1 \
        -o "$out/$name.p$n.fp32.safetensors"
done <<'MODELS'
# MHA, head_dim 16
mha           |--seed 11 --dim 64 --heads 4 --kv-heads 4 --head-dim 16 --ffn 172 --layers 2 --vocab 256|1,17,42,7,99,3,250
# GQA 6:2, head_dim 16, tied lm_head, hidden 96
gqa_tied      |--seed 12 --dim 96 --heads 6 --kv-heads 2 --head-dim 16 --ffn 256 --layers 2 --vocab 320 --tied|1,300,5,77,77,12,0,319,64,8,150,33,2
# MQA 2:1, head_dim 32, 3 layers, 4 outlier channels x20 (SmoothQuant-like activations)
outliers      |--seed 13 --dim 64 --heads 2 --kv-heads 1 --head-dim 32 --ffn 128 --layers 3 --vocab 256 --outliers 4 --outlier-scale 20|1,9,8,7,6,5,4,3,2,200,201,202,203
# stories260K's shapes (GQA 8:4, head_dim 8), 2 layers
stories_shape |--seed 14 --dim 64 --heads 8 --kv-heads 4 --head-dim 8 --ffn 172 --layers 2 --vocab 512|1,400,13,13,500,2,256
MODELS
