/* file_util.h — whole-file reads and atomic writes.
 *
 * Atomic write: a file is written under a temporary name in the same folder and renamed over the target
 * only once it is complete and flushed. rename() within one file system is atomic, so a reader (or a crash
 * at any moment) sees either the old file or the new one, never half of one. Checkpoints and golden files
 * are written this way.
 *
 *   AtomicFile f;
 *   if (atomic_file_open(&f, "model.ckpt", &err) != 0) error_exit(&err);
 *   fwrite(..., f.stream);
 *   if (atomic_file_commit(&f, &err) != 0) error_exit(&err);   // or atomic_file_abort(&f) on failure
 */
#ifndef COURSE_FILE_UTIL_H
#define COURSE_FILE_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "course_error.h"

/* Read a whole file into a malloc'ed buffer (caller frees). Returns 0, or -1 with err naming the file. */
int file_read_all(const char *path, unsigned char **bytes, size_t *length, CourseError *err);

typedef struct AtomicFile {
    FILE *stream; /* write here */
    char final_path[4096];
    char temp_path[4096];
} AtomicFile;

int atomic_file_open(AtomicFile *file, const char *path, CourseError *err);
/* Flush, fsync, close and rename over the final path. */
int atomic_file_commit(AtomicFile *file, CourseError *err);
/* Close and delete the temporary file; the final path is untouched. */
void atomic_file_abort(AtomicFile *file);

#endif
