/* course_error.h — error reporting shared by every chapter.
 *
 * Readers (npy, IDX) never exit on bad input: they fill a CourseError with a message that names the file and
 * the problem ("data/x.npy: truncated: header says 4096 bytes of data, file has 100") and return -1, so that
 * tests and fuzzers can call them on anything. Programs turn such an error into a message and exit code 1
 * with die() or error_exit().
 */
#ifndef COURSE_ERROR_H
#define COURSE_ERROR_H

#include <stddef.h>

#define COURSE_ERROR_MAX 512

typedef struct CourseError {
    char message[COURSE_ERROR_MAX]; /* "<file>: <problem>", empty when no error */
} CourseError;

#if defined(__GNUC__)
#define COURSE_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define COURSE_NORETURN __attribute__((noreturn))
#else
#define COURSE_PRINTF(fmt_index, first_arg)
#define COURSE_NORETURN
#endif

/* Record "<source>: <formatted problem>" in err (err may be NULL). Always returns -1, so readers can write
 * `return error_set(err, path, "bad magic");`. */
int error_set(CourseError *err, const char *source, const char *fmt, ...) COURSE_PRINTF(3, 4);

/* Print "error: <message>" to stderr and exit with status 1. */
COURSE_NORETURN void error_exit(const CourseError *err);

/* Print "error: <formatted message>" to stderr and exit with status 1. */
COURSE_NORETURN void die(const char *fmt, ...) COURSE_PRINTF(1, 2);

/* malloc/calloc that die with a clear message instead of returning NULL. */
void *xmalloc(size_t bytes);
void *xcalloc(size_t count, size_t size);

#endif
