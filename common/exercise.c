/* exercise.c — see exercise.h. */
#include "exercise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TODOS 64

static const char *todo_ids[MAX_TODOS];
static int todo_count = 0;

/* Runs at exit: a program that reached a stub must not report success, whatever main returned. */
static void fail_if_todo(void)
{
    if (todo_count == 0) {
        return;
    }
    fprintf(stderr, "%d exercise(s) not implemented yet:", todo_count);
    for (int i = 0; i < todo_count; i++) {
        fprintf(stderr, " %s", todo_ids[i]);
    }
    fprintf(stderr, " (run `tools/course hint ID` for a hint)\n");
    fflush(NULL);
    _exit(1);
}

void course_todo(const char *exercise_id, const char *lesson_path)
{
    for (int i = 0; i < todo_count; i++) {
        if (strcmp(todo_ids[i], exercise_id) == 0) {
            return;
        }
    }
    if (todo_count == 0) {
        atexit(fail_if_todo);
    }
    if (todo_count < MAX_TODOS) {
        todo_ids[todo_count++] = exercise_id;
    }
    fflush(stdout);
    fprintf(stderr, "%s is not implemented yet (see %s)\n", exercise_id, lesson_path);
}

int course_todo_count(void)
{
    return todo_count;
}
