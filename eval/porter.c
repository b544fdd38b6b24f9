/* porter.c: NLTK's PorterStemmer (mode NLTK_EXTENSIONS, the default and what rouge_score uses),
 * step for step: the irregular-forms pool, steps 1a/1b/1c/2/3/4/5a/5b with NLTK's modifications
 * (ies/ied on 4-letter words, the (*c and not c) Y rule, alli recursion, bli/fulli/logi, the
 * two-letter *o condition). Words are edited in place in a small buffer; stems only shrink. */
#include "porter.h"

#include <stdlib.h>
#include <string.h>

/* A working word: chars in w[0..n), NUL kept at w[n]. */
typedef struct {
    char *w;
    size_t n;
} word;

static int is_vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/* NLTK _is_consonant: a 'y' is a consonant iff it starts the word or follows a vowel. */
static int is_cons(const char *w, size_t i)
{
    if (is_vowel(w[i]))
        return 0;
    if (w[i] != 'y')
        return 1;
    int negate = 0;
    while (i > 0 && w[i] == 'y') {
        negate = !negate;
        i--;
    }
    return (!is_vowel(w[i])) != negate;
}

/* m in [C](VC){m}[V]: the number of vowel->consonant transitions. */
static int measure(const char *w, size_t n)
{
    int m = 0, prev_vowel = 0;
    for (size_t i = 0; i < n; i++) {
        int c = is_cons(w, i);
        if (c && prev_vowel)
            m++;
        prev_vowel = !c;
    }
    return m;
}

static int contains_vowel(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_cons(w, i))
            return 1;
    return 0;
}

static int ends_double_cons(const char *w, size_t n)
{
    return n >= 2 && w[n - 1] == w[n - 2] && is_cons(w, n - 1);
}

/* *o: ends consonant-vowel-consonant, last not w/x/y; NLTK also accepts a 2-letter vowel+consonant. */
static int ends_cvc(const char *w, size_t n)
{
    if (n >= 3 && is_cons(w, n - 3) && !is_cons(w, n - 2) && is_cons(w, n - 1) &&
        w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y')
        return 1;
    return n == 2 && !is_cons(w, 0) && is_cons(w, 1);
}

static int ends(const word *x, const char *suf)
{
    size_t k = strlen(suf);
    return x->n >= k && memcmp(x->w + x->n - k, suf, k) == 0;
}

/* Drops `k` chars and appends `repl`. */
static void replace_tail(word *x, size_t k, const char *repl)
{
    size_t r = strlen(repl);
    memcpy(x->w + x->n - k, repl, r);
    x->n = x->n - k + r;
    x->w[x->n] = '\0';
}

enum cond { C_NONE, C_M0, C_M1, C_ION, C_LOGI };

struct rule {
    const char *suffix, *repl;
    enum cond cond;
};

/* NLTK _apply_rule_list for plain suffix rules: the first rule whose suffix matches decides; if its
 * condition fails the word is left as it is. Returns 1 when a suffix matched. */
static int apply_rules(word *x, const struct rule *rules, size_t n_rules)
{
    for (size_t i = 0; i < n_rules; i++) {
        const struct rule *r = &rules[i];
        if (!ends(x, r->suffix))
            continue;
        size_t k = strlen(r->suffix), sn = x->n - k;
        int ok;
        switch (r->cond) {
        case C_NONE: ok = 1; break;
        case C_M0: ok = measure(x->w, sn) > 0; break;
        case C_M1: ok = measure(x->w, sn) > 1; break;
        case C_ION: ok = measure(x->w, sn) > 1 && sn > 0 && (x->w[sn - 1] == 's' || x->w[sn - 1] == 't'); break;
        case C_LOGI: ok = measure(x->w, x->n - 3) > 0; break; /* NLTK tests word[:-3], not the stem */
        default: ok = 0;
        }
        if (ok)
            replace_tail(x, k, r->repl);
        return 1;
    }
    return 0;
}

#define N_RULES(a) (sizeof(a) / sizeof((a)[0]))

static void step1a(word *x)
{
    if (ends(x, "ies") && x->n == 4) {
        replace_tail(x, 3, "ie");
        return;
    }
    static const struct rule rules[] = {
        {"sses", "ss", C_NONE}, {"ies", "i", C_NONE}, {"ss", "ss", C_NONE}, {"s", "", C_NONE},
    };
    apply_rules(x, rules, N_RULES(rules));
}

static void step1b(word *x)
{
    if (ends(x, "ied")) {
        replace_tail(x, 3, x->n == 4 ? "ie" : "i");
        return;
    }
    if (ends(x, "eed")) {
        if (measure(x->w, x->n - 3) > 0)
            replace_tail(x, 3, "ee");
        return;
    }
    size_t k = 0;
    if (ends(x, "ed") && contains_vowel(x->w, x->n - 2))
        k = 2;
    else if (ends(x, "ing") && contains_vowel(x->w, x->n - 3))
        k = 3;
    if (!k)
        return;
    replace_tail(x, k, ""); /* the intermediate stem */
    static const struct rule rules[] = {{"at", "ate", C_NONE}, {"bl", "ble", C_NONE}, {"iz", "ize", C_NONE}};
    if (apply_rules(x, rules, N_RULES(rules)))
        return;
    if (ends_double_cons(x->w, x->n)) {
        char last = x->w[x->n - 1];
        if (last != 'l' && last != 's' && last != 'z') {
            x->n -= 1; /* stem[:-2] + stem[-1] */
            x->w[x->n] = '\0';
        }
        return;
    }
    if (measure(x->w, x->n) == 1 && ends_cvc(x->w, x->n))
        replace_tail(x, 0, "e");
}

static void step1c(word *x)
{
    /* (*c and not c) Y -> I: the y follows a consonant and is not the word's second letter. */
    if (ends(x, "y") && x->n - 1 > 1 && is_cons(x->w, x->n - 2))
        replace_tail(x, 1, "i");
}

static void step2(word *x)
{
    if (ends(x, "alli") && measure(x->w, x->n - 4) > 0) {
        replace_tail(x, 4, "al");
        step2(x);
        return;
    }
    static const struct rule rules[] = {
        {"ational", "ate", C_M0}, {"tional", "tion", C_M0}, {"enci", "ence", C_M0},
        {"anci", "ance", C_M0},   {"izer", "ize", C_M0},    {"bli", "ble", C_M0},
        {"alli", "al", C_M0},     {"entli", "ent", C_M0},   {"eli", "e", C_M0},
        {"ousli", "ous", C_M0},   {"ization", "ize", C_M0}, {"ation", "ate", C_M0},
        {"ator", "ate", C_M0},    {"alism", "al", C_M0},    {"iveness", "ive", C_M0},
        {"fulness", "ful", C_M0}, {"ousness", "ous", C_M0}, {"aliti", "al", C_M0},
        {"iviti", "ive", C_M0},   {"biliti", "ble", C_M0},  {"fulli", "ful", C_M0},
        {"logi", "log", C_LOGI},
    };
    apply_rules(x, rules, N_RULES(rules));
}

static void step3(word *x)
{
    static const struct rule rules[] = {
        {"icate", "ic", C_M0}, {"ative", "", C_M0}, {"alize", "al", C_M0}, {"iciti", "ic", C_M0},
        {"ical", "ic", C_M0},  {"ful", "", C_M0},   {"ness", "", C_M0},
    };
    apply_rules(x, rules, N_RULES(rules));
}

static void step4(word *x)
{
    static const struct rule rules[] = {
        {"al", "", C_M1},  {"ance", "", C_M1}, {"ence", "", C_M1},  {"er", "", C_M1},
        {"ic", "", C_M1},  {"able", "", C_M1}, {"ible", "", C_M1},  {"ant", "", C_M1},
        {"ement", "", C_M1}, {"ment", "", C_M1}, {"ent", "", C_M1}, {"ion", "", C_ION},
        {"ou", "", C_M1},  {"ism", "", C_M1},  {"ate", "", C_M1},   {"iti", "", C_M1},
        {"ous", "", C_M1}, {"ive", "", C_M1},  {"ize", "", C_M1},
    };
    apply_rules(x, rules, N_RULES(rules));
}

static void step5a(word *x)
{
    if (!ends(x, "e"))
        return;
    int m = measure(x->w, x->n - 1);
    if (m > 1 || (m == 1 && !ends_cvc(x->w, x->n - 1)))
        replace_tail(x, 1, "");
}

static void step5b(word *x)
{
    /* ("ll", "l") when measure(word[:-1]) > 1 */
    if (ends(x, "ll") && measure(x->w, x->n - 1) > 1)
        replace_tail(x, 2, "l");
}

/* NLTK_EXTENSIONS' irregular forms: word -> stem, returned as they are. */
static const char *const pool[][2] = {
    {"sky", "sky"},       {"skies", "sky"},       {"dying", "die"},       {"lying", "lie"},
    {"tying", "tie"},     {"news", "news"},       {"innings", "inning"},  {"inning", "inning"},
    {"outings", "outing"}, {"outing", "outing"},  {"cannings", "canning"}, {"canning", "canning"},
    {"howe", "howe"},     {"proceed", "proceed"}, {"exceed", "exceed"},   {"succeed", "succeed"},
};

size_t porter_stem(char *out, const char *in, size_t len)
{
    memcpy(out, in, len);
    out[len] = '\0';
    for (size_t i = 0; i < sizeof pool / sizeof pool[0]; i++)
        if (strlen(pool[i][0]) == len && memcmp(pool[i][0], in, len) == 0) {
            strcpy(out, pool[i][1]);
            return strlen(out);
        }
    if (len <= 2)
        return len;
    word x = {out, len};
    step1a(&x);
    step1b(&x);
    step1c(&x);
    step2(&x);
    step3(&x);
    step4(&x);
    step5a(&x);
    step5b(&x);
    return x.n;
}
