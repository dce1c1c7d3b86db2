/*
 * Whether a file or directory a config names can be read now (header
 * only): CA bundles, client certificates and keys, which libcurl opens only
 * when it makes a request. A typo there would otherwise fail every
 * delivery with "problem with the SSL CA cert", retried for ever; checked
 * at init, it stops startup (and --check-config) naming the key. Not part
 * of the plugin SDK.
 */
#ifndef ES_FILE_CHECK_H
#define ES_FILE_CHECK_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 when `path` is a file this process can open for reading, else why
 * not (an errno value). Opened without blocking: a FIFO named by mistake
 * must not hang startup. */
static inline int es_file_unreadable(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        err = EISDIR;
    if (fd >= 0)
        close(fd);
    return err;
}

/* fopen(path, "r") that does not block on a FIFO named by mistake (its
 * reads then find nothing, so the caller says the file is empty or not
 * what it wants). NULL with errno. */
static inline FILE *es_fopen_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
    if (fd >= 0 && !f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* The same for a directory (a CA directory of hashed names). */
static inline int es_dir_unreadable(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno;
    closedir(d);
    return 0;
}

/* 0, or -1 with "KEY: PATH: why" in errstr. */
static inline int es_path_check(int err, const char *key, const char *path,
                                char *errstr, size_t errstr_size)
{
    if (!err)
        return 0;
    snprintf(errstr, errstr_size, "%s: %s: %s", key, path, strerror(err));
    return -1;
}

static inline int es_file_check_readable(const char *key, const char *path,
                                         char *errstr, size_t errstr_size)
{
    return es_path_check(es_file_unreadable(path), key, path, errstr,
                         errstr_size);
}

static inline int es_dir_check_readable(const char *key, const char *path,
                                        char *errstr, size_t errstr_size)
{
    return es_path_check(es_dir_unreadable(path), key, path, errstr,
                         errstr_size);
}

#endif
