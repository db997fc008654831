/* timer.h — a monotonic wall-clock timer for progress bars and benchmarks.
 *
 *   double t0 = timer_seconds();  ...work...;  double elapsed = timer_seconds() - t0;
 *
 * CLOCK_MONOTONIC never jumps backwards when the system clock is adjusted, unlike time() or gettimeofday().
 */
#ifndef COURSE_TIMER_H
#define COURSE_TIMER_H

/* Seconds since an arbitrary fixed point, with nanosecond resolution. Only differences are meaningful. */
double timer_seconds(void);

#endif
