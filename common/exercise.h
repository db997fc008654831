/* exercise.h — what a stubbed exercise calls in the student edition.
 *
 * The solution code marks each region a learner writes:
 *
 *     float relu(float x)
 *     {
 *         // BEGIN EXERCISE ch01.relu: return x for x > 0, else 0 (about 1 line)
 *         ...solution...
 *         // END EXERCISE
 *     }
 *
 * (with C block comments). `tools/course exercises` replaces the region by a TODO comment carrying the hint
 * and a call course_todo("ch01.relu", "chapters/01-activations/README.md"). That call prints, once per
 * exercise, "ch01.relu is not implemented yet (see chapters/01-activations/README.md)" and makes the program
 * exit with status 1 when it ends, so every test that reaches a stub fails and names it — it never crashes
 * or hangs.
 */
#ifndef COURSE_EXERCISE_H
#define COURSE_EXERCISE_H

/* Report an unimplemented exercise (printed once per id) and arrange for a failing exit status. */
void course_todo(const char *exercise_id, const char *lesson_path);

/* How many distinct exercises reported themselves unimplemented so far in this process. */
int course_todo_count(void);

#endif
