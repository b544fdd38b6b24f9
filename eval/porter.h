/* porter.h: the Porter stemmer exactly as NLTK's PorterStemmer() computes it in its default mode
 * (NLTK_EXTENSIONS), which is what rouge_score uses for use_stemmer=True. Checked word for word
 * against NLTK by tests/test_rouge.c (tests/data/rouge/porter.tsv). */
#ifndef DUET_PORTER_H
#define DUET_PORTER_H

#include <stddef.h>

/* Stems `word` (`len` bytes, expected lowercase ASCII [a-z0-9] as rouge_score's tokenizer yields;
 * other bytes are treated as consonants, like NLTK does) into `out`, which must hold len + 1 bytes
 * (a stem is never longer than its word). Writes a NUL-terminated stem; returns its length. */
size_t porter_stem(char *out, const char *word, size_t len);

#endif
