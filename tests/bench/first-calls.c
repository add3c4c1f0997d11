// first-calls: run a command under ptrace and print, in the order they are
// first called, the functions of BINARY that any process running BINARY
// called (the command and all its descendants are followed).
//
// usage: first-calls SYMBOLS BINARY -- COMMAND [ARG...]
//   SYMBOLS  lines "HEX-ADDRESS NAME": BINARY's function symbols as `nm`
//            prints them (for a PIE, offsets from its load address).
//
// How: when a process executes BINARY, a breakpoint (int3) is written at
// the entry of every function not seen yet; the first hit prints the
// function, puts the original byte back and resumes. A function costs one
// trap, however often it is called. Used by hot-functions.sh to list the
// code a launch runs, so the linker can put it together (see there).
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

struct fn { unsigned long off; char *name; int seen; };
static struct fn *fns; static size_t nfns;
static char binpath[PATH_MAX];

static int cmpfn(const void *a, const void *b) {
    const struct fn *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

// Per traced process running BINARY: its load base and saved bytes.
#define MAXP 65536
static unsigned long base_of[MAXP];
static unsigned char *orig_of[MAXP];
// A new process's first stop can be reported before its parent's fork
// event: it waits (not continued) until the event has copied the parent's
// breakpoints for it, or its first breakpoint would kill it with SIGTRAP.
static unsigned char announced[MAXP], stopped_early[MAXP];

static unsigned long load_base(pid_t pid) {
    char p[64], line[PATH_MAX + 128];
    snprintf(p, sizeof p, "/proc/%d/maps", pid);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    unsigned long base = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off; char perm[8]; char path[PATH_MAX] = "";
        if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %4095s", &lo, &hi, perm, &off, path) >= 4 &&
            strcmp(path, binpath) == 0 && off == 0) { base = lo; break; }
    }
    fclose(f);
    return base;
}

static int is_binary(pid_t pid) {
    char p[64], exe[PATH_MAX]; ssize_t n;
    snprintf(p, sizeof p, "/proc/%d/exe", pid);
    n = readlink(p, exe, sizeof exe - 1);
    if (n < 0) return 0;
    exe[n] = 0;
    return strcmp(exe, binpath) == 0;
}

static void poke_byte(pid_t pid, unsigned long addr, unsigned char b, unsigned char *old) {
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, pid, addr, 0);
    if (errno) return;
    if (old) *old = (unsigned char)w;
    w = (w & ~0xffL) | b;
    ptrace(PTRACE_POKETEXT, pid, addr, w);
}

static void arm(pid_t pid) {
    unsigned long base = load_base(pid);
    if (!base) return;
    base_of[pid] = base;
    free(orig_of[pid]);
    orig_of[pid] = calloc(nfns, 1);
    for (size_t i = 0; i < nfns; i++)
        if (!fns[i].seen) poke_byte(pid, base + fns[i].off, 0xcc, &orig_of[pid][i]);
}

static long order = 0;

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--")) {
        fprintf(stderr, "usage: first-calls SYMBOLS BINARY -- COMMAND [ARG...]\n");
        return 2;
    }
    if (!realpath(argv[2], binpath)) { perror(argv[2]); return 2; }
    FILE *s = fopen(argv[1], "r");
    if (!s) { perror(argv[1]); return 2; }
    char line[8192]; size_t cap = 0;
    while (fgets(line, sizeof line, s)) {
        unsigned long off; char name[8000];
        if (sscanf(line, "%lx %7999s", &off, name) != 2) continue;
        if (nfns == cap) { cap = cap ? cap * 2 : 1024; fns = realloc(fns, cap * sizeof *fns); }
        fns[nfns].off = off; fns[nfns].name = strdup(name); fns[nfns].seen = 0; nfns++;
    }
    qsort(fns, nfns, sizeof *fns, cmpfn);
    // drop duplicates (aliases at one address)
    size_t j = 0;
    for (size_t i = 0; i < nfns; i++) if (!j || fns[i].off != fns[j - 1].off) fns[j++] = fns[i];
    nfns = j;

    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[4], argv + 4);
        _exit(127);
    }
    int st;
    waitpid(child, &st, 0);
    ptrace(PTRACE_SETOPTIONS, child, 0,
           PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, child, 0, 0);
    int live = 1, rc = 0;
    while (live > 0) {
        pid_t pid = waitpid(-1, &st, __WALL);
        if (pid < 0) { if (errno == EINTR) continue; break; }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            live--;
            if (pid == child) rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (pid < MAXP) { base_of[pid] = 0; free(orig_of[pid]); orig_of[pid] = NULL; announced[pid] = 0; }
            continue;
        }
        if (!WIFSTOPPED(st)) continue;
        int sig = WSTOPSIG(st), ev = st >> 16, deliver = 0;
        if (ev == PTRACE_EVENT_FORK || ev == PTRACE_EVENT_VFORK || ev == PTRACE_EVENT_CLONE) {
            unsigned long np; ptrace(PTRACE_GETEVENTMSG, pid, 0, &np);
            live++;
            // the new process shares the parent's text bytes (a copy): same base, same saved bytes
            if (np < MAXP && pid < MAXP && orig_of[pid]) {
                base_of[np] = base_of[pid];
                orig_of[np] = malloc(nfns); memcpy(orig_of[np], orig_of[pid], nfns);
            }
            if (np < MAXP) {
                announced[np] = 1;
                if (stopped_early[np]) { stopped_early[np] = 0; ptrace(PTRACE_CONT, np, 0, 0); }
            }
        } else if (ev == PTRACE_EVENT_EXEC) {
            if (pid < MAXP) { base_of[pid] = 0; free(orig_of[pid]); orig_of[pid] = NULL; }
            if (is_binary(pid)) arm(pid);
        } else if (ev == PTRACE_EVENT_STOP) {
        } else if (sig == SIGTRAP && pid < MAXP && orig_of[pid]) {
            struct user_regs_struct r;
            ptrace(PTRACE_GETREGS, pid, 0, &r);
            unsigned long at = r.rip - 1 - base_of[pid];
            struct fn key = { .off = at };
            struct fn *f = bsearch(&key, fns, nfns, sizeof *fns, cmpfn);
            if (f) {
                size_t i = f - fns;
                poke_byte(pid, base_of[pid] + at, orig_of[pid][i], NULL);
                r.rip -= 1;
                ptrace(PTRACE_SETREGS, pid, 0, &r);
                if (!f->seen) { f->seen = 1; order++; printf("%s\n", f->name); }
            } else deliver = sig;
        } else if (sig == SIGSTOP && ev == 0) {
            // a new child's initial stop
            if (pid != child && pid < MAXP && !announced[pid]) { stopped_early[pid] = 1; continue; }
        } else {
            deliver = sig;
        }
        ptrace(PTRACE_CONT, pid, 0, deliver);
    }
    fflush(stdout);
    fprintf(stderr, "first-calls: %ld of %zu functions called\n", order, nfns);
    return rc;
}
