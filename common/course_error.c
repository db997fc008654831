/* course_error.c — see course_error.h. */
#include "course_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int error_set(CourseError *err, const char *source, const char *fmt, ...)
{
    if (err == NULL) {
        return -1;
    }
    int used = snprintf(err->message, sizeof err->message, "%s: ", source ? source : "(unknown)");
    if (used < 0 || (size_t)used >= sizeof err->message) {
        return -1;
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message + used, sizeof err->message - (size_t)used, fmt, args);
    va_end(args);
    return -1;
}

void error_exit(const CourseError *err)
{
    fprintf(stderr, "error: %s\n", err->message);
    exit(1);
}

void die(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL) {
        die("out of memory allocating %zu bytes", bytes);
    }
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        die("out of memory allocating %zu x %zu bytes", count, size);
    }
    return p;
}
