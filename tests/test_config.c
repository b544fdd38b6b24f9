/* test_config.c: config.json parsing: defaults, every rejection names the file and the key or value
 * (missing keys, unknown architecture, rope scaling types, wrong JSON types), and write -> load. */
#include "test_util.h"

#include "config.h"
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE "\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":172," \
             "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"vocab_size\":512," \
             "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5"

static int parse(duet_config *c, const char *json)
{
    duet_error_clear();
    return duet_config_parse(c, json, "cfg.json");
}

/* Parsing must fail with an error naming cfg.json and containing `frag`. */
static void expect_error(const char *json, const char *frag)
{
    duet_config c;
    ck_assert_msg(parse(&c, json) == -1, "accepted: %s", json);
    ck_assert_msg(strstr(duet_error(), "cfg.json") != NULL, "error does not name the file: %s", duet_error());
    ck_assert_msg(strstr(duet_error(), frag) != NULL, "error lacks '%s': %s", frag, duet_error());
}

START_TEST(test_defaults)
{
    duet_config c;
    ck_assert_msg(parse(&c, "{" BASE "}") == 0, "%s", duet_error());
    ck_assert_int_eq(c.dim, 64);
    ck_assert_int_eq(c.ffn_dim, 172);
    ck_assert_int_eq(c.n_layers, 5);
    ck_assert_int_eq(c.n_heads, 8);
    ck_assert_int_eq(c.n_kv_heads, 8); /* absent: = heads */
    ck_assert_int_eq(c.head_dim, 8);   /* absent: D / H */
    ck_assert(c.rope_theta == 10000.0f);
    ck_assert(c.norm_eps == 1e-5f);
    ck_assert_int_eq(c.tie_embeddings, 0);
    ck_assert_int_eq(c.bos_id, -1);
    ck_assert_int_eq(c.eos_id, -1);
}
END_TEST

START_TEST(test_explicit)
{
    duet_config c;
    ck_assert_msg(parse(&c, "{" BASE ",\"num_key_value_heads\":4,\"head_dim\":16,\"rope_theta\":500000.0,"
                            "\"tie_word_embeddings\":true,\"bos_token_id\":1,\"eos_token_id\":[2,3],"
                            "\"rope_scaling\":null}") == 0, "%s", duet_error());
    ck_assert_int_eq(c.n_kv_heads, 4);
    ck_assert_int_eq(c.head_dim, 16);
    ck_assert(c.rope_theta == 500000.0f);
    ck_assert_int_eq(c.tie_embeddings, 1);
    ck_assert_int_eq(c.bos_id, 1);
    ck_assert_int_eq(c.eos_id, 2); /* a list: the first */
    /* transformers >= 5 keeps theta in rope_parameters */
    ck_assert_msg(parse(&c, "{" BASE ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":1234.5}}") == 0,
                  "%s", duet_error());
    ck_assert(c.rope_theta == 1234.5f);
    /* model_type alone names the architecture */
    ck_assert_msg(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":172,"
                            "\"num_hidden_layers\":1,\"num_attention_heads\":8,\"vocab_size\":32,"
                            "\"max_position_embeddings\":16,\"rms_norm_eps\":1e-6}") == 0, "%s", duet_error());
}
END_TEST

START_TEST(test_missing_keys)
{
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "vocab_size", "max_position_embeddings", "rms_norm_eps"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        /* BASE with key i removed */
        char json[1024] = "{\"architectures\":[\"LlamaForCausalLM\"]";
        const char *vals[] = {"64", "172", "5", "8", "512", "512", "1e-5"};
        for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
            if (j != i) snprintf(json + strlen(json), sizeof json - strlen(json), ",\"%s\":%s", keys[j], vals[j]);
        strcat(json, "}");
        char frag[128];
        snprintf(frag, sizeof frag, "missing required key '%s'", keys[i]);
        expect_error(json, frag);
    }
    expect_error("{\"hidden_size\":64}", "architecture");
}
END_TEST

START_TEST(test_architecture)
{
    expect_error("{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64}", "MistralForCausalLM");
    expect_error("{\"model_type\":\"gpt2\",\"hidden_size\":64}", "gpt2");
    expect_error("{" BASE ",\"hidden_act\":\"gelu\"}", "gelu");
    expect_error("{" BASE ",\"attention_bias\":true}", "attention_bias");
}
END_TEST

START_TEST(test_rope_scaling)
{
    expect_error("{" BASE ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}", "'linear'");
    expect_error("{" BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}}", "'llama3'");
    expect_error("{" BASE ",\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0}}", "'dynamic'");
    expect_error("{" BASE ",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":10000}}", "'yarn'");
    expect_error("{" BASE ",\"rope_scaling\":\"linear\"}", "rope_scaling");
}
END_TEST

START_TEST(test_bad_types)
{
    expect_error("{" BASE ",\"num_key_value_heads\":\"4\"}", "'num_key_value_heads' must be an integer");
    expect_error("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64.5}", "'hidden_size'");
    expect_error("{" BASE ",\"rope_theta\":\"big\"}", "'rope_theta' must be a number");
    expect_error("{" BASE ",\"tie_word_embeddings\":1}", "tie_word_embeddings");
    expect_error("{" BASE ",\"bos_token_id\":\"<s>\"}", "bos_token_id");
    expect_error("{" BASE ",\"num_key_value_heads\":3}", "not a multiple");
    expect_error("{" BASE ",\"head_dim\":7}", "even");
    expect_error("{" BASE ",\"num_hidden_layers\":0}", "positive");
    expect_error("{" BASE ",\"eos_token_id\":600}", "outside the vocabulary");
    expect_error("[1,2]", "JSON object");
    expect_error("{\"hidden_size\": 64,,}", "invalid JSON");
}
END_TEST

/* Every field is range-checked before the cast: nothing wraps, nothing becomes inf. */
START_TEST(test_ranges)
{
    /* 4294967298 = 2^32 + 2 would read as 2 through an int cast */
    expect_error("{" BASE ",\"eos_token_id\":4294967298}", "'eos_token_id' = 4294967298");
    expect_error("{" BASE ",\"eos_token_id\":[2, 4294967298]}", "'eos_token_id' = 4294967298");
    expect_error("{" BASE ",\"eos_token_id\":-1}", "'eos_token_id' = -1 is not a token id");
    expect_error("{" BASE ",\"bos_token_id\":-5}", "'bos_token_id' = -5");
    expect_error("{" BASE ",\"eos_token_id\":[]}", "empty list");
    expect_error("{" BASE ",\"rope_theta\":1e39}", "'rope_theta' = 1e+39 is out of the range of a float");
    expect_error("{" BASE ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":-1e300}}", "'rope_theta'");
    expect_error("{" BASE ",\"rms_norm_eps\":1e-60}", "rms_norm_eps must be positive"); /* 0 as a float */
    expect_error("{" BASE ",\"rms_norm_eps\":1e40}", "'rms_norm_eps'");
    expect_error("{" BASE ",\"num_key_value_heads\":-1}", "'num_key_value_heads' = -1 is out of range");
    expect_error("{" BASE ",\"head_dim\":0}", "'head_dim' = 0 is out of range");
    expect_error("{" BASE ",\"head_dim\":-2}", "'head_dim' = -2");
    expect_error("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4294967360}", "'hidden_size' = 4294967360");
    expect_error("{" BASE ",\"vocab_size\":99999999999}", "'vocab_size' = 99999999999");
    expect_error("{" BASE ",\"max_position_embeddings\":-512}", "'max_position_embeddings' = -512");
    expect_error("{" BASE ",\"num_hidden_layers\":100000}", "'num_hidden_layers' = 100000");
    /* the largest values still read exactly */
    duet_config c;
    ck_assert_msg(parse(&c, "{" BASE ",\"bos_token_id\":0,\"eos_token_id\":[511, 2147483647]}") == 0, "%s",
                  duet_error());
    ck_assert_int_eq(c.bos_id, 0);
    ck_assert_int_eq(c.eos_id, 511);
}
END_TEST

/* A derived head_dim (D / H) is only defined when H divides D: the error says so, not "head_dim". */
START_TEST(test_head_dim_derived)
{
    expect_error("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":60,\"intermediate_size\":172,"
                 "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"vocab_size\":512,"
                 "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5}",
                 "hidden_size 60 is not divisible by num_attention_heads 8");
    expect_error("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4,\"intermediate_size\":172,"
                 "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"vocab_size\":512,"
                 "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5}",
                 "hidden_size 4 is not divisible by num_attention_heads 8");
    /* with an explicit head_dim, H need not divide D */
    duet_config c;
    ck_assert_msg(parse(&c, "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":60,\"intermediate_size\":172,"
                            "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"vocab_size\":512,"
                            "\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,\"head_dim\":8}") == 0,
                  "%s", duet_error());
    ck_assert_int_eq(c.head_dim, 8);
}
END_TEST

START_TEST(test_write_load)
{
    char dir[] = "/tmp/duet_test_cfg_XXXXXX", path[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    duet_config c = {.dim = 96, .ffn_dim = 256, .n_layers = 3, .n_heads = 6, .n_kv_heads = 2, .head_dim = 16,
                     .vocab_size = 320, .max_pos = 128, .norm_eps = 1e-6f, .rope_theta = 500000.0f,
                     .tie_embeddings = 1, .bos_id = 1, .eos_id = -1};
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(duet_config_write(&c, path), 0);
    duet_config r;
    ck_assert_msg(duet_config_load(&r, dir) == 0, "%s", duet_error());
    ck_assert_int_eq(memcmp(&c, &r, sizeof c), 0);
    unlink(path);
    ck_assert_int_eq(duet_config_load(&r, dir), -1);
    ck_assert_ptr_nonnull(strstr(duet_error(), "config.json"));
    rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_explicit);
    tcase_add_test(tc, test_missing_keys);
    tcase_add_test(tc, test_architecture);
    tcase_add_test(tc, test_rope_scaling);
    tcase_add_test(tc, test_bad_types);
    tcase_add_test(tc, test_ranges);
    tcase_add_test(tc, test_head_dim_derived);
    tcase_add_test(tc, test_write_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return test_run_suite(suite()); }
