/* commands.h: the subcommands of the `duet` CLI; each lives in cli/cmd_<name>.c and returns the
 * process exit status (0 ok, 1 failure or mismatch, 2 usage error). */
#ifndef DUET_COMMANDS_H
#define DUET_COMMANDS_H

int cmd_generate(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_rouge(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_serve(int argc, char **argv); /* duet bench --serve */
int cmd_chat(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);

#endif
