#ifndef QKDNET_QKD_SYSTEM_H
#define QKDNET_QKD_SYSTEM_H
#include <sys/types.h>

/// Spawns `path` with `argv` (NULL-terminated). Standard input is /dev/null; standard output
/// and standard error are appended to `output_path` (created 0600: logs are for the run's owner). The child starts with an
/// empty signal mask and default dispositions for SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGPIPE,
/// whatever the spawning thread had blocked. With `new_session` != 0 the child leads its own
/// session, so a terminal's Ctrl-C does not reach it.
/// Returns 0 and stores the PID, or an errno value.
int qkd_spawn(const char *path, char *const argv[], const char *output_path, int new_session,
              pid_t *out_pid);

/// Creates the stop pipe (`qkd_stop_fd()`) without installing signal handlers, for a process
/// whose signals something else handles; ignores SIGPIPE. Returns 0 or an errno value.
int qkd_create_stop_pipe(void);

/// Records a stop request as a stop signal would, and makes `qkd_stop_fd()` readable.
/// Async-signal-safe; callable from any thread.
void qkd_request_stop(int sig);

/// Installs handlers for SIGTERM and SIGINT that record the request and make
/// `qkd_stop_fd()` readable; ignores SIGPIPE. Returns 0 or an errno value.
int qkd_install_stop_handlers(void);

/// A file descriptor that becomes readable once a stop signal arrived (for zmq_poll).
int qkd_stop_fd(void);

/// The number of the stop signal received, or 0.
int qkd_stop_signal(void);

/// prctl(PR_SET_PDEATHSIG, sig): the calling process gets `sig` when its parent dies.
int qkd_set_parent_death_signal(int sig);

/// Pins the calling thread (and threads it creates afterwards) to CPU `cpu`.
/// Returns 0 or an errno value.
int qkd_pin_thread_to_cpu(int cpu);

/// Lets the calling thread run on every CPU again (for worker threads created by a pinned one).
int qkd_unpin_thread(void);

/// Raises the calling thread's nice value by `increment` (lower priority; Linux threads have
/// their own). Returns 0 or an errno value.
int qkd_lower_thread_priority(int increment);
#endif

/// Keeps freed memory in the process for reuse instead of returning it to the kernel at once:
/// allocations up to 32 MiB come from the heap (glibc's M_MMAP_THRESHOLD, its maximum), and a
/// heap is trimmed only when 64 MiB lie free at its top (M_TRIM_THRESHOLD). A node passes
/// megabyte frames from its quantum worker to its event loop; with glibc's defaults each was
/// a fresh mapping, faulted in page by page by the loop and unmapped again. Returns 0 if both
/// settings took, else -1.
int qkd_keep_heap(void);
