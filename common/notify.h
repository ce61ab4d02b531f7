/*
 * systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram of
 * "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET ("@..." is the abstract
 * namespace). berth serve says READY=1 once it serves, RELOADING=1 and READY=1 around a
 * SIGHUP reload, STOPPING=1 when it drains, and WATCHDOG=1 while it answers (when the
 * unit sets WatchdogSec). Thread-safe (no state).
 */
#ifndef BERTH_NOTIFY_H
#define BERTH_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* Send state (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET. BERTH_OK when sent or
 * when $NOTIFY_SOCKET is unset or empty (not run by systemd: nothing to do); BERTH_EINVAL
 * when it names no usable unix socket path; BERTH_EIO when the send fails. Never blocks
 * for long: a datagram to a local socket. */
enum berth_err notify_send(const char *state);

/* Whether systemd asks this process for watchdog pings ("WATCHDOG=1"):
 * $WATCHDOG_USEC set to a positive number, and $WATCHDOG_PID unset or this
 * process's id (as sd_watchdog_enabled(3)); *usec is then the interval. */
bool notify_watchdog_usec(uint64_t *usec);

#endif
