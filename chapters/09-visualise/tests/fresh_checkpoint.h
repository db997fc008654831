/* fresh_checkpoint.h — for chapter 09's tests: save a network (weights set by the test) as a chapter 07
 * checkpoint of a run that has not started, so that the tests load it the way mnist_explain does
 * (checkpoint_load_network). */
#ifndef CH09_FRESH_CHECKPOINT_H
#define CH09_FRESH_CHECKPOINT_H

#include "cnn.h"
#include "course_error.h"

/* Epoch 0, step 0, the trainer's default settings; momentum as it is in net. Returns 0 or -1 with err. */
int fresh_checkpoint_save(const char *path, const Cnn *net, CourseError *err);

#endif
