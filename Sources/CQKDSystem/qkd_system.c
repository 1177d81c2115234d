#define _GNU_SOURCE
#include "qkd_system.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

int qkd_spawn(const char *path, char *const argv[], const char *output_path, int new_session,
              pid_t *out_pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) { posix_spawn_file_actions_destroy(&actions); return rc; }

    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);

    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGQUIT);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_session) flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);

    pid_t pid = 0;
    rc = posix_spawn(&pid, path, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc == 0 && out_pid) *out_pid = pid;
    return rc;
}

static int stop_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_signal = 0;

static void on_stop_signal(int sig) {
    int saved = errno;
    if (stop_signal == 0) stop_signal = sig;
    if (stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t ignored = write(stop_pipe[1], &b, 1);
        (void)ignored;
    }
    errno = saved;
}

int qkd_create_stop_pipe(void) {
    if (stop_pipe[0] < 0) {
        if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return errno;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

void qkd_request_stop(int sig) { on_stop_signal(sig); }

int qkd_install_stop_handlers(void) {
    int rc = qkd_create_stop_pipe();
    if (rc != 0) return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0) return errno;
    if (sigaction(SIGINT, &sa, NULL) != 0) return errno;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int qkd_stop_fd(void) { return stop_pipe[0]; }

int qkd_stop_signal(void) { return (int)stop_signal; }

int qkd_set_parent_death_signal(int sig) {
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) != 0) return errno;
    return 0;
}

#include <pthread.h>
#include <sched.h>

int qkd_pin_thread_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int qkd_unpin_thread(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = sysconf(_SC_NPROCESSORS_CONF);
    for (long i = 0; i < n && i < CPU_SETSIZE; i++) CPU_SET((int)i, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int qkd_lower_thread_priority(int increment) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int current = getpriority(PRIO_PROCESS, (id_t)tid);
    if (current == -1 && errno != 0) return errno;
    int target = current + increment;
    if (target > 19) target = 19;
    return setpriority(PRIO_PROCESS, (id_t)tid, target) == 0 ? 0 : errno;
}

int qkd_keep_heap(void) {
    int a = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    int b = mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    return (a == 1 && b == 1) ? 0 : -1;
}
