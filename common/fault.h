/*
 * Crash points for tests: a step that must survive kill -9 at a precise
 * moment calls fault_point with the moment's name; when the environment
 * variable BERTH_TEST_CRASH_AT names it, the process logs
 * event=test_crash point=<name> and kills itself with SIGKILL, exactly as
 * kill -9 would, so a test can restart on the same root and check what
 * recovery makes of it. Without the variable a point costs one getenv.
 * Thread-safe.
 */
#ifndef BERTH_FAULT_H
#define BERTH_FAULT_H

#include <stdbool.h>

void fault_point(const char *name);

/* Hold points: while the file named by the environment variable
 * BERTH_TEST_HOLD_<NAME> (NAME upper-cased) exists, fault_hold waits
 * (polling every 20 ms), so a test can observe the state before the step
 * and release it by removing the file. Without the variable it returns at
 * once. */
void fault_hold(const char *name);

/* Injected failures: true while the environment variable
 * BERTH_TEST_FAULTS (a comma-separated list) names name. A step that can
 * fail for a reason a test cannot provoke at will (a database or file
 * lookup under EMFILE, an OpenSSL failure) asks it and fails as it would
 * then. Without the variable it costs one getenv. */
bool fault_injected(const char *name);

#endif
