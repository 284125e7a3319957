/* testutil.h: helpers shared by the cmocka suites: fresh temporary directories, deadlines
 * scaled under sanitizers (PVM_TEST_SCALE), condition waits, printed random seeds. */
#ifndef PVM_TESTUTIL_H
#define PVM_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a heap path. Aborts on error. */
char *pvm_test_tmpdir(const char *tag);
/* Removes a directory tree (rm -rf) and frees path. NULL is a no-op. */
void pvm_test_rmtree(char *path);
/* The deadline scale factor: PVM_TEST_SCALE, default 1. */
int pvm_test_scale(void);
/* Waits until cond(arg) is true or timeout_ms * scale passes, polling with short naps.
 * Returns true when the condition held. */
bool pvm_test_wait(bool (*cond)(void *), void *arg, int timeout_ms);
/* Seed from PVM_TEST_SEED or the clock; printed as "seed=N (set PVM_TEST_SEED=N to replay)". */
uint64_t pvm_test_seed(const char *what);
/* xorshift64* step. */
uint64_t pvm_test_rand(uint64_t *state);
/* Path of a file in the build tree ($PVM_BUILD_DIR/rel) or source tree ($PVM_SOURCE_DIR/rel). */
char *pvm_test_build_path(const char *rel);
char *pvm_test_source_path(const char *rel);

#endif
