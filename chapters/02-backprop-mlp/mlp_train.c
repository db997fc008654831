/* mlp_train.c — Chapter 02's program: train a 784-128-10 ReLU network on MNIST with SGD + momentum, on the CPU.
 *
 *   build/bin/mlp_train                                   # 4 epochs on the bundled data/ (10,000 digits)
 *   build/bin/mlp_train --epochs 4 --seed 1 --summary-json run.json
 *   build/bin/mlp_train --save run.safetensors --log run.csv          # checkpoint every epoch, CSV log
 *   build/bin/mlp_train --resume run.safetensors --save run.safetensors --epochs 8   # on to epoch 8
 *   build/bin/mlp_train --data /usr/share/datasets/fashion-mnist --epochs 10
 *   build/bin/mlp_train --help
 *
 * Every epoch: a progress bar (running loss, samples/s) on stderr, then the test-set loss and accuracy on
 * stdout. At the end: the confusion matrix and, with --summary-json, a machine-readable summary written
 * atomically. A loss that becomes NaN or infinite stops training with exit status 1 (try --lr 1000).
 * The loop, the checkpoints (--save, --resume: an exact continuation), the log and Ctrl-C (a last checkpoint,
 * exit 130) are the course's trainer kit, common/trainer.h, the same in all three trainers.
 */
#include <stdio.h>
#include <stdlib.h>

#include "course_error.h"
#include "idx.h"
#include "mlp.h"
#include "testing.h"
#include "train_checkpoint.h"
#include "train_util.h"
#include "trainer.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

#define CLASSES 10

typedef struct MlpRun {
    Mlp net;
    const MnistSplit *test;
    float lr, momentum, weight_decay;
} MlpRun;

static float mlp_run_step(void *context, Trainer *t, const float *x, const int32_t *labels, size_t n)
{
    (void)t;
    MlpRun *r = context;
    return mlp_train_step(&r->net, x, labels, n, r->lr, r->momentum, r->weight_decay);
}

static double mlp_run_evaluate(void *context, size_t *correct, size_t *confusion)
{
    MlpRun *r = context;
    return mlp_evaluate(&r->net, r->test, correct, confusion);
}

/* The checkpoint description: PyTorch's names for nn.Linear's parameters, and the sizes that must match. */
static void mlp_checkpoint_model(Mlp *net, CheckpointModel *model)
{
    *model = (CheckpointModel){.format = "course-mnist-mlp", .format_version = "1", .what = "chapter 02's MLP"};
    checkpoint_model_arch(model, "inputs", "--data (images of another size)", "%zu", net->inputs);
    checkpoint_model_arch(model, "hidden", "--hidden", "%zu", net->hidden);
    checkpoint_model_arch(model, "classes", NULL, "%zu", net->classes);
    checkpoint_model_tensor(model, "fc1.weight", 2, (size_t[]){net->hidden, net->inputs}, net->w1, net->vw1);
    checkpoint_model_tensor(model, "fc1.bias", 1, (size_t[]){net->hidden}, net->b1, net->vb1);
    checkpoint_model_tensor(model, "fc2.weight", 2, (size_t[]){net->classes, net->hidden}, net->w2, net->vw2);
    checkpoint_model_tensor(model, "fc2.bias", 1, (size_t[]){net->classes}, net->b2, net->vb2);
}

int main(int argc, char **argv)
{
    const char *data_dir = NULL;
    int hidden = 128;
    TrainerOptions options = trainer_default_options();
    FlagSpec flags[3 + TRAINER_FLAGS] = {
        {"--data", FLAG_STRING, &data_dir, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--weight-decay", FLAG_DOUBLE, &options.weight_decay, 0, 1e3, "L2 weight decay lambda added to every gradient"},
        {"--hidden", FLAG_INT, &hidden, 1, 100000, "hidden units"},
    };
    size_t n_flags = 3;
    trainer_flags(&options, flags, &n_flags);
    CourseError err;
    int parsed = flags_parse(argc, argv, flags, n_flags, "mlp_train",
                             "Train a 784-H-10 ReLU MLP on MNIST with SGD + momentum (chapter 02).", &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    trainer_resume_settings(&options, argc, argv);

    MnistSplit train, test;
    data_dir = trainer_load_data(&options, data_dir, COURSE_DATA_DIR_DEFAULT, &train, &test);
    size_t inputs = train.rows * train.cols;
    printf("data: %s: %zu training and %zu test images of %zux%zu\n", data_dir, train.count, test.count, train.rows,
           train.cols);
    printf("network: %zu-%d-%d ReLU, batch %d, lr %g, momentum %g, weight decay %g, seed %d\n", inputs, hidden,
           CLASSES, options.batch, options.lr, options.momentum, options.weight_decay, options.seed);

    MlpRun run = {.test = &test, .lr = (float)options.lr, .momentum = (float)options.momentum,
                  .weight_decay = (float)options.weight_decay};
    mlp_create(&run.net, inputs, (size_t)hidden, CLASSES, (size_t)options.batch);
    mlp_init(&run.net, (uint64_t)options.seed);
    TrainModel model = {.net = &run, .classes = CLASSES, .host_batches = true, .step = mlp_run_step,
                        .evaluate = mlp_run_evaluate};
    mlp_checkpoint_model(&run.net, &model.checkpoint);
    size_t confusion[CLASSES * CLASSES] = {0}; /* (true, predicted) */

    Trainer *trainer = trainer_create("mlp_train", &options);
    trainer_start(trainer, &model, &train, test.count, data_dir, "cpu");
    trainer_run(trainer, &model, confusion);
    const JsonField extra[] = {
        json_integer("hidden", hidden),
        json_number("weight_decay", options.weight_decay),
    };
    trainer_write_summary(trainer, data_dir, extra, COUNT_OF(extra));

    trainer_destroy(trainer);
    mlp_destroy(&run.net);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
