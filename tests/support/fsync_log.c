/* An LD_PRELOAD shim for redis-server that records what each fsync made durable.
 *
 * A `kill -9` of Redis is not a power loss: everything it wrote is still in the page cache and
 * reaches the disk anyway. To simulate one, tests/support/power_loss.py needs to know what was
 * durable when the plug was pulled. This shim wraps fsync() and fdatasync() and, after each
 * successful call, appends to the file named by $ANYGATE_FSYNC_LOG:
 *
 *   F <t> <dev> <ino> <size> <path>  a regular file: its first <size> bytes are durable (the
 *                                  size is taken *before* the call, so bytes another thread
 *                                  wrote during the fsync are not counted), and so is its name;
 *                                  <t> is CLOCK_MONOTONIC seconds when the call began
 *   D <dev> <ino> <path>           a directory: the entries listed before the call, one per line
 *   E <dev> <ino> <name>           as "E" lines right after it, are durable names
 *
 * Forked children (the AOF rewrite) inherit the shim and log to the same file; every record is
 * one write() to an O_APPEND descriptor, so records of concurrent threads never interleave.
 * When the shim loads it logs "L <pid>", so a test can tell that it applies (a statically linked
 * redis-server would ignore LD_PRELOAD).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_MAX 65536

typedef int (*sync_fn)(int);

static void append_record(const char *buf, size_t len) {
    const char *log = getenv("ANYGATE_FSYNC_LOG");
    if (log == NULL || len == 0) return;
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (out < 0) return;
    ssize_t ignored = write(out, buf, len);
    (void)ignored;
    close(out);
}

__attribute__((constructor)) static void announce(void) {
    char line[64];
    int n = snprintf(line, sizeof line, "L %ld\n", (long)getpid());
    if (n > 0) append_record(line, (size_t)n);
}

static ssize_t fd_path(int fd, char *path, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, size - 1);
    if (n >= 0) path[n] = '\0';
    return n;
}

/* The record an fsync of `fd` will be worth if it succeeds; 0 when there is nothing to log. */
static size_t describe(int fd, char *buf, size_t size) {
    struct stat st;
    char path[4096];
    if (fstat(fd, &st) != 0 || fd_path(fd, path, sizeof path) < 0) return 0;
    int n;
    if (S_ISREG(st.st_mode)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        n = snprintf(buf, size, "F %lld.%06ld %lu %lu %lld %s\n", (long long)now.tv_sec,
                     now.tv_nsec / 1000, (unsigned long)st.st_dev, (unsigned long)st.st_ino,
                     (long long)st.st_size, path);
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
    }
    if (!S_ISDIR(st.st_mode)) return 0;
    n = snprintf(buf, size, "D %lu %lu %s\n", (unsigned long)st.st_dev,
                 (unsigned long)st.st_ino, path);
    if (n <= 0 || (size_t)n >= size) return 0;
    size_t used = (size_t)n;
    DIR *dir = opendir(path);
    if (dir == NULL) return 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.' &&
            (entry->d_name[1] == '\0' || (entry->d_name[1] == '.' && entry->d_name[2] == '\0')))
            continue;
        struct stat child; /* not d_ino: overlay filesystems report another number there */
        if (fstatat(dirfd(dir), entry->d_name, &child, AT_SYMLINK_NOFOLLOW) != 0) continue;
        n = snprintf(buf + used, size - used, "E %lu %lu %s\n", (unsigned long)child.st_dev,
                     (unsigned long)child.st_ino, entry->d_name);
        if (n <= 0 || (size_t)n >= size - used) {
            used = 0; /* too many entries: log nothing, which only ever understates */
            break;
        }
        used += (size_t)n;
    }
    closedir(dir);
    return used;
}

static int logged_sync(int fd, const char *name, sync_fn *real) {
    if (*real == NULL) *real = (sync_fn)dlsym(RTLD_NEXT, name);
    char *record = malloc(RECORD_MAX);
    size_t len = record != NULL ? describe(fd, record, RECORD_MAX) : 0;
    int rc = (*real)(fd);
    if (rc == 0) append_record(record, len);
    free(record);
    return rc;
}

int fsync(int fd) {
    static sync_fn real;
    return logged_sync(fd, "fsync", &real);
}

int fdatasync(int fd) {
    static sync_fn real;
    return logged_sync(fd, "fdatasync", &real);
}
