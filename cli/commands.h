/* commands.h: the subcommands of the `duet` CLI; each lives in cli/cmd_<name>.c and returns the
 * process exit status (0 ok, 1 failure or mismatch, 2 usage error). */
#ifndef DUET_COMMANDS_H
#define DUET_COMMANDS_H

/* TEMPORARY while subcommands land in parallel: weak, so a missing one is NULL in the table. */
#define DUET_CMD __attribute__((weak))

DUET_CMD int cmd_generate(int argc, char **argv);
DUET_CMD int cmd_golden(int argc, char **argv);
DUET_CMD int cmd_diff(int argc, char **argv);
DUET_CMD int cmd_tokenize(int argc, char **argv);
DUET_CMD int cmd_synth(int argc, char **argv);
DUET_CMD int cmd_rouge(int argc, char **argv);
DUET_CMD int cmd_eval(int argc, char **argv);

#endif
