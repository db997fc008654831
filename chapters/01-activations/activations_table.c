/* activations_table.c — print every Chapter 01 activation and its derivative for the inputs you give.
 *
 *   build/bin/activations_table                       # a default set of inputs, extremes included
 *   build/bin/activations_table -3 -1 0 1 3 nan inf   # your own inputs
 *   build/bin/activations_table --range -6 6 241 --csv curves.csv --quiet
 *   build/bin/activations_table --slope 0.2 -2 2      # leaky ReLU with negative slope 0.2
 *
 * The softmax and log_softmax columns treat all the inputs together as one vector of logits. --csv writes the
 * same table as CSV (written to a temporary file, then renamed), which plot_activations.py turns into the
 * lesson's figures.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "course_error.h"
#include "file_util.h"

static const float DEFAULT_INPUTS[] = {-1e4f, -100.0f, -5.0f, -2.0f, -1.0f, -0.5f, 0.0f, 0.5f,
                                       1.0f, 2.0f, 5.0f, 100.0f, 1e4f, INFINITY, -INFINITY, NAN};

/* printf prints a NaN as "nan" or "-nan" depending on its sign bit, which differs between compilers for the same
 * computation; the table always says "nan". */
static void print_value(FILE *out, const char *format, float value)
{
    if (isnan(value)) {
        fprintf(out, format[0] == ',' ? ",nan" : " %12s", "nan");
    } else {
        fprintf(out, format, (double)value);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: activations_table [--slope S] [--range START STOP COUNT] [--csv FILE] [--quiet] [X ...]\n"
            "  X ...                 input values (default: a set including +-1e4, +-inf and nan)\n"
            "  --range A B N         N evenly spaced inputs from A to B (inclusive)\n"
            "  --slope S             leaky ReLU negative slope (default %g)\n"
            "  --csv FILE            also write the table as CSV to FILE\n"
            "  --quiet               do not print the table\n",
            (double)LEAKY_RELU_DEFAULT_SLOPE);
}

static float parse_float(const char *text, const char *what)
{
    char *end = NULL;
    errno = 0;
    float value = strtof(text, &end);
    if (end == text || *end != '\0') {
        die("%s: '%s' is not a number", what, text);
    }
    return value;
}

#define N_COLUMNS 10
static const char *COLUMN_NAMES[N_COLUMNS] = {"sigmoid", "d_sigmoid", "tanh", "d_tanh", "relu", "d_relu",
                                              "leaky_relu", "d_leaky_relu", "softmax", "log_softmax"};

/* One row of the table: every function and derivative at x (softmax columns filled by the caller). */
static void fill_row(float x, float slope, float row[N_COLUMNS])
{
    row[0] = sigmoid(x);
    row[1] = sigmoid_derivative(x);
    row[2] = tanh_activation(x);
    row[3] = tanh_derivative(x);
    row[4] = relu(x);
    row[5] = relu_derivative(x);
    row[6] = leaky_relu(x, slope);
    row[7] = leaky_relu_derivative(x, slope);
}

int main(int argc, char **argv)
{
    float slope = LEAKY_RELU_DEFAULT_SLOPE;
    const char *csv_path = NULL;
    int quiet = 0;
    int have_range = 0;
    int only_values = 0; /* after "--", everything is an input value (so "-2" is never taken for an option) */
    size_t capacity = (size_t)argc + sizeof DEFAULT_INPUTS / sizeof DEFAULT_INPUTS[0];
    float *inputs = xmalloc(capacity * sizeof *inputs); /* (n) */
    size_t n = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--slope") == 0) {
            if (i + 1 >= argc) {
                die("--slope needs a value");
            }
            slope = parse_float(argv[++i], "--slope");
        } else if (strcmp(argv[i], "--csv") == 0) {
            if (i + 1 >= argc) {
                die("--csv needs a file name");
            }
            csv_path = argv[++i];
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--range") == 0) {
            if (i + 3 >= argc) {
                die("--range needs START STOP COUNT");
            }
            if (n > 0) {
                die("give either --range or explicit inputs, not both");
            }
            float start = parse_float(argv[i + 1], "--range START");
            float stop = parse_float(argv[i + 2], "--range STOP");
            char *end = NULL;
            long count = strtol(argv[i + 3], &end, 10);
            if (*end != '\0' || count < 2 || count > 10000000) {
                die("--range COUNT must be an integer from 2 to 10000000, not '%s'", argv[i + 3]);
            }
            if (!isfinite(start) || !isfinite(stop)) {
                die("--range START and STOP must be finite");
            }
            free(inputs);
            inputs = xmalloc((size_t)count * sizeof *inputs);
            for (long k = 0; k < count; k++) {
                inputs[k] = start + (stop - start) * (float)k / (float)(count - 1);
            }
            n = (size_t)count;
            have_range = 1;
            i += 3;
        } else if (strcmp(argv[i], "--") == 0) {
            only_values = 1;
        } else if (!only_values && argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "error: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            if (have_range) {
                die("give either --range or explicit inputs, not both");
            }
            inputs[n++] = parse_float(argv[i], "input");
        }
    }
    if (n == 0) {
        n = sizeof DEFAULT_INPUTS / sizeof DEFAULT_INPUTS[0];
        memcpy(inputs, DEFAULT_INPUTS, sizeof DEFAULT_INPUTS);
    }

    float *table = xmalloc(n * N_COLUMNS * sizeof *table); /* (n, N_COLUMNS) */
    float *column = xmalloc(n * sizeof *column); /* (n) */
    for (size_t i = 0; i < n; i++) {
        fill_row(inputs[i], slope, &table[i * N_COLUMNS]);
    }
    softmax(inputs, column, n);
    for (size_t i = 0; i < n; i++) {
        table[i * N_COLUMNS + 8] = column[i];
    }
    log_softmax(inputs, column, n);
    for (size_t i = 0; i < n; i++) {
        table[i * N_COLUMNS + 9] = column[i];
    }

    if (!quiet) {
        printf("%12s", "x");
        for (int c = 0; c < N_COLUMNS; c++) {
            printf(" %12s", COLUMN_NAMES[c]);
        }
        printf("\n");
        for (size_t i = 0; i < n; i++) {
            if (isnan(inputs[i])) {
                printf("%12s", "nan");
            } else {
                printf("%12.5g", (double)inputs[i]);
            }
            for (int c = 0; c < N_COLUMNS; c++) {
                print_value(stdout, " %12.5g", table[i * N_COLUMNS + c]);
            }
            printf("\n");
        }
        printf("(leaky ReLU negative slope %g; softmax columns treat the %zu inputs as one vector)\n", (double)slope, n);
    }

    if (csv_path != NULL) {
        AtomicFile file;
        CourseError err;
        if (atomic_file_open(&file, csv_path, &err) != 0) {
            error_exit(&err);
        }
        fprintf(file.stream, "x");
        for (int c = 0; c < N_COLUMNS; c++) {
            fprintf(file.stream, ",%s", COLUMN_NAMES[c]);
        }
        fprintf(file.stream, "\n");
        for (size_t i = 0; i < n; i++) {
            fprintf(file.stream, isnan(inputs[i]) ? "nan" : "%.9g", (double)inputs[i]);
            for (int c = 0; c < N_COLUMNS; c++) {
                print_value(file.stream, ",%.9g", table[i * N_COLUMNS + c]);
            }
            fprintf(file.stream, "\n");
        }
        if (ferror(file.stream)) {
            atomic_file_abort(&file);
            die("%s: write failed", csv_path);
        }
        if (atomic_file_commit(&file, &err) != 0) {
            error_exit(&err);
        }
        if (!quiet) {
            printf("wrote %s (%zu rows)\n", csv_path, n);
        }
    }
    free(table);
    free(column);
    free(inputs);
    return 0;
}
