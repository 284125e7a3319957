/* daemon.h: the daemon's run loop, entered by main.c once the configuration is loaded and
 * logging is set up. */
#ifndef PVM_DAEMON_H
#define PVM_DAEMON_H

#include "pvm/config.h"

#include <stdbool.h>

struct pvm_daemon_opts {
	bool foreground; /* --foreground: do not detach */
	bool paused;     /* --paused: recover and serve the API, run no step until resumed */
};

/* Runs the daemon until it is told to stop. Returns 0 on a clean shutdown, else a negative
 * PVM_E* code or -errno. */
int pvm_daemon_run(const struct pvm_config *cfg, const struct pvm_daemon_opts *opts);

#endif
