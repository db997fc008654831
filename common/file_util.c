/* file_util.c — see file_util.h. */
#include "file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_read_all(const char *path, unsigned char **bytes, size_t *length, CourseError *err)
{
    *bytes = NULL;
    *length = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return error_set(err, path, "cannot open: %s", strerror(errno));
    }
    size_t capacity = 1 << 16;
    size_t used = 0;
    unsigned char *buffer = malloc(capacity);
    if (buffer == NULL) {
        fclose(f);
        return error_set(err, path, "out of memory");
    }
    for (;;) {
        if (used == capacity) {
            unsigned char *bigger = realloc(buffer, capacity * 2);
            if (bigger == NULL) {
                free(buffer);
                fclose(f);
                return error_set(err, path, "out of memory reading %zu bytes", capacity * 2);
            }
            buffer = bigger;
            capacity *= 2;
        }
        size_t got = fread(buffer + used, 1, capacity - used, f);
        used += got;
        if (got == 0) {
            break;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buffer);
        return error_set(err, path, "read error");
    }
    *bytes = buffer;
    *length = used;
    return 0;
}

int atomic_file_open(AtomicFile *file, const char *path, CourseError *err)
{
    memset(file, 0, sizeof *file);
    if (strlen(path) + 16 >= sizeof file->temp_path) {
        return error_set(err, path, "path too long");
    }
    strcpy(file->final_path, path);
    snprintf(file->temp_path, sizeof file->temp_path, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(file->temp_path);
    if (fd < 0) {
        return error_set(err, path, "cannot create a temporary file beside it: %s", strerror(errno));
    }
    /* mkstemp creates the file readable by its owner only (0600); give it the permissions an ordinary
     * fopen would (0666 minus the umask), since it is renamed into place as the final file. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    file->stream = fdopen(fd, "wb");
    if (file->stream == NULL) {
        close(fd);
        unlink(file->temp_path);
        return error_set(err, path, "cannot open the temporary file: %s", strerror(errno));
    }
    return 0;
}

int atomic_file_commit(AtomicFile *file, CourseError *err)
{
    int failed = fflush(file->stream) != 0;
    failed |= fsync(fileno(file->stream)) != 0;
    int saved_errno = errno;
    failed |= fclose(file->stream) != 0;
    file->stream = NULL;
    if (failed) {
        unlink(file->temp_path);
        return error_set(err, file->final_path, "write failed: %s", strerror(saved_errno));
    }
    if (rename(file->temp_path, file->final_path) != 0) {
        saved_errno = errno;
        unlink(file->temp_path);
        return error_set(err, file->final_path, "cannot rename the temporary file into place: %s",
                         strerror(saved_errno));
    }
    /* The rename is a change to the folder: fsync the folder too, so that after a power cut the new file (not
     * the old one) is what the folder holds. Best effort: some file systems refuse to open a folder. */
    char folder[sizeof file->final_path];
    snprintf(folder, sizeof folder, "%s", file->final_path);
    const int dir = open(dirname(folder), O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
        (void)fsync(dir);
        close(dir);
    }
    return 0;
}

void atomic_file_abort(AtomicFile *file)
{
    if (file->stream != NULL) {
        fclose(file->stream);
        file->stream = NULL;
    }
    unlink(file->temp_path);
}
