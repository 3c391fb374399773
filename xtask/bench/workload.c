/* keytrail's benchmark workloads: each runs N operations and prints nanoseconds per operation.
 *   open FILE        open + read + close of FILE
 *   connect PORT     TCP connect to a loopback listener of its own, accept, close both
 *   forkexec         fork + exec /bin/true + wait
 *   agent FILE       an agent's shape: per operation a child process that connects twice to
 *                    loopback; one operation in 16 also reads FILE (a credential)
 *   https FILE       a small HTTPS request and its answer on one keep-alive connection to a
 *                    TLS server of its own (https.c); FILE is read first (a credential makes
 *                    the client its holder, and its token goes in the requests)
 * Scale workloads (print their own figures):
 *   credstorm N DIR      N children, each reads every file in DIR then connects once to
 *                        loopback; prints elapsed ns (credential events = N * files)
 *   procs N FILE         N children that read FILE and stay alive; prints "ready", then waits
 *                        for its stdin to close and ends them
 *   storm N              N children that exit at once (fork + exit + wait); prints elapsed ns
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"

double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

void read_file(const char *path) {
    char buf[4096];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(1); }
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
}

int listener(struct sockaddr_in *addr) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)addr, sizeof *addr) || listen(l, 128) ||
        getsockname(l, (struct sockaddr *)addr, &len)) { perror("listen"); exit(1); }
    return l;
}

static void connect_once(int l, struct sockaddr_in *addr) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)addr, sizeof *addr)) { perror("connect"); exit(1); }
    int a = accept(l, 0, 0);
    close(a);
    close(c);
}

static int scale(const char *mode, long n, int files, char **file) {
    struct sockaddr_in addr;
    int l = listener(&addr);
    double start = now_ns();
    if (!strcmp(mode, "credstorm")) {
        /* The paths come from a directory, not argv: records carry argv, and a long one would
         * measure JSON size rather than keytrail. */
        static char paths[256][512];
        files = 0;
        DIR *d = opendir(file[0]);
        struct dirent *e;
        while (d && (e = readdir(d)) && files < 256) {
            if (e->d_name[0] == '.') continue;
            snprintf(paths[files++], sizeof paths[0], "%s/%s", file[0], e->d_name);
        }
        if (d) closedir(d);
        static char *list[256];
        for (int f = 0; f < files; f++) list[f] = paths[f];
        file = list;
        start = now_ns();
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                for (int f = 0; f < files; f++) read_file(file[f]);
                int c = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(c, (struct sockaddr *)&addr, sizeof addr)) _exit(1);
                close(c);
                _exit(0);
            }
            waitpid(p, 0, 0);
            /* accept what the children left in the backlog, so it never fills */
            if (i % 64 == 63) {
                int a;
                struct timeval tv = {0, 1000};
                setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                while ((a = accept(l, 0, 0)) >= 0) close(a);
            }
        }
    } else if (!strcmp(mode, "procs")) {
        pid_t *kids = calloc(n, sizeof *kids);
        for (long i = 0; i < n; i++) {
            kids[i] = fork();
            if (kids[i] == 0) { read_file(file[0]); pause(); _exit(0); }
            if (kids[i] < 0) { perror("fork"); break; }
        }
        printf("ready\n");
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0) {}
        for (long i = 0; i < n && kids[i] > 0; i++) kill(kids[i], SIGKILL);
        while (wait(0) > 0) {}
        return 0;
    } else if (!strcmp(mode, "storm")) {
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) _exit(0);
            waitpid(p, 0, 0);
        }
    } else {
        return -1;
    }
    printf("%.0f\n", now_ns() - start);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3) {
        int r = scale(argv[1], atol(argv[2]), argc - 3, argv + 3);
        if (r >= 0) return r;
    }
    if (argc < 3) { fprintf(stderr, "usage: %s open|connect|forkexec|agent|https N [FILE]\n", argv[0]); return 2; }
    const char *mode = argv[1];
    long n = atol(argv[2]);
    const char *file = argc > 3 ? argv[3] : "/etc/hostname";
    if (!strcmp(mode, "https")) return https(n, file);
    struct sockaddr_in addr;
    int l = listener(&addr);
    double start = now_ns();
    for (long i = 0; i < n; i++) {
        if (!strcmp(mode, "open")) {
            read_file(file);
        } else if (!strcmp(mode, "connect")) {
            connect_once(l, &addr);
        } else if (!strcmp(mode, "forkexec")) {
            pid_t p = fork();
            if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
            waitpid(p, 0, 0);
        } else if (!strcmp(mode, "agent")) {
            pid_t p = fork();
            if (p == 0) {
                if (i % 16 == 0) read_file(file);
                connect_once(l, &addr);
                connect_once(l, &addr);
                _exit(0);
            }
            waitpid(p, 0, 0);
        } else {
            fprintf(stderr, "unknown workload %s\n", mode);
            return 2;
        }
    }
    printf("%.0f\n", (now_ns() - start) / n);
    return 0;
}
