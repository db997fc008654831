/* cusim_translate.c — the build-time translator that lets the CUDA simulator compile standard .cu files.
 *
 *   cusim_translate INPUT.cu OUTPUT.cpp
 *
 * cmake/CourseCuda.cmake runs it on every .cu (and .cuh) of a simulator build; the output is compiled as
 * C++ with `-include cusim.h`. It rewrites only the CUDA syntax that C++ lacks, keeping every line where it
 * was (a #line directive names the original file, so compiler errors and simulator reports point there):
 *
 *   kernel<<<grid, block, smem>>>(args);
 *       -> kernel | cusim::launch_config("kernel", __FILE__, __LINE__, grid, block, smem)(args);
 *   __shared__ float tile[16][16];                         (inside a function)
 *       -> static float tile[16][16]; cusim::shared_declared(&tile, sizeof(tile), __FILE__, __LINE__);
 *          (one static per kernel is right because blocks run one after another; the call NaN-fills it
 *          the first time a thread of each block reaches it, and counts it against the 48 KiB limit)
 *   extern __shared__ float buffer[];                      (inside a function)
 *       -> float *buffer = reinterpret_cast<float *>(cusim::dynamic_shared());
 *
 * Comments, strings, character literals and preprocessor lines are copied unchanged. It is a scanner, not
 * a C++ parser: it expects the usual forms above (one `extern __shared__` array per declaration, launches
 * written with <<< and >>>), and reports anything else it cannot rewrite with the file and line.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Buffer {
    char *data;
    size_t length, capacity;
} Buffer;

static void buffer_append(Buffer *b, const char *s, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity * 2 : 65536;
        while (capacity < b->length + n + 1) {
            capacity *= 2;
        }
        b->data = realloc(b->data, capacity);
        if (!b->data) {
            fprintf(stderr, "cusim_translate: out of memory\n");
            exit(1);
        }
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = '\0';
}

static void buffer_printf(Buffer *b, const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    buffer_append(b, text, (size_t)n);
}

static const char *input_path;

static int line_of(const char *source, size_t position)
{
    int line = 1;
    for (size_t i = 0; i < position; i++) {
        line += source[i] == '\n';
    }
    return line;
}

static void fail(const char *source, size_t position, const char *message)
{
    fprintf(stderr, "%s:%d: error: cusim_translate: %s\n", input_path, line_of(source, position), message);
    exit(1);
}

static int is_ident(int c)
{
    return isalnum(c) || c == '_';
}

/* Copy a comment, string or character literal starting at s[*i]; returns 1 if there was one. */
static int copy_literal(const char *s, size_t n, size_t *i, Buffer *out)
{
    size_t start = *i, j = *i;
    if (s[j] == '/' && j + 1 < n && s[j + 1] == '/') {
        while (j < n && s[j] != '\n') {
            j++;
        }
    } else if (s[j] == '/' && j + 1 < n && s[j + 1] == '*') {
        j += 2;
        while (j + 1 < n && !(s[j] == '*' && s[j + 1] == '/')) {
            j++;
        }
        j = j + 2 <= n ? j + 2 : n;
    } else if (s[j] == '"' || s[j] == '\'') {
        char quote = s[j++];
        while (j < n && s[j] != quote && s[j] != '\n') {
            j += s[j] == '\\' ? 2 : 1;
        }
        j = j < n ? j + 1 : n;
    } else {
        return 0;
    }
    buffer_append(out, s + start, j - start);
    *i = j;
    return 1;
}

/* The text of a declaration from s[from] up to (not including) the ';' that ends it at nesting depth 0. */
static size_t find_semicolon(const char *s, size_t n, size_t from)
{
    int depth = 0;
    for (size_t j = from; j < n; j++) {
        if (s[j] == '(' || s[j] == '[' || s[j] == '{') {
            depth++;
        } else if (s[j] == ')' || s[j] == ']' || s[j] == '}') {
            depth--;
        } else if (s[j] == ';' && depth == 0) {
            return j;
        }
    }
    fail(s, from, "no ';' after a __shared__ declaration");
    return n;
}

/* In the declarator text d[0..len): the last identifier at parenthesis depth 0 before the first '[' or '='
 * (the declared name). Writes it to name; returns 0 if there is none. */
static int declared_name(const char *d, size_t len, char *name, size_t name_size)
{
    int depth = 0;
    size_t best_start = 0, best_len = 0;
    for (size_t j = 0; j < len; j++) {
        char c = d[j];
        if (c == '(') {
            depth++;
        } else if (c == ')') {
            depth--;
        } else if (depth == 0 && (c == '[' || c == '=')) {
            break;
        } else if (depth == 0 && (isalpha((unsigned char)c) || c == '_')) {
            size_t k = j;
            while (k < len && is_ident((unsigned char)d[k])) {
                k++;
            }
            best_start = j;
            best_len = k - j;
            j = k - 1;
        } else if (isdigit((unsigned char)c)) {
            while (j + 1 < len && is_ident((unsigned char)d[j + 1])) {
                j++;
            }
        }
    }
    if (best_len == 0 || best_len + 1 > name_size) {
        return 0;
    }
    memcpy(name, d + best_start, best_len);
    name[best_len] = '\0';
    return 1;
}

static void append_newlines(Buffer *out, const char *s, size_t from, size_t to)
{
    for (size_t j = from; j < to; j++) {
        if (s[j] == '\n') {
            buffer_append(out, "\n", 1);
        }
    }
}

/* Remove `__align__(...)`, `alignas(...)` and `__attribute__((...))` from a type (for the pointer we
 * declare in place of `extern __shared__ T name[]`); the simulator's dynamic shared memory is 256-byte
 * aligned anyway. */
static void strip_alignment(char *t)
{
    static const char *const words[] = {"__align__", "alignas", "__attribute__"};
    for (size_t w = 0; w < 3; w++) {
        char *p;
        while ((p = strstr(t, words[w])) != NULL) {
            char *q = p + strlen(words[w]);
            while (*q == ' ' || *q == '\t') {
                q++;
            }
            if (*q == '(') {
                int depth = 0;
                do {
                    depth += *q == '(';
                    depth -= *q == ')';
                    q++;
                } while (*q && depth > 0);
            }
            memmove(p, q, strlen(q) + 1);
        }
    }
}

static char *trim(char *t)
{
    while (isspace((unsigned char)*t)) {
        t++;
    }
    size_t len = strlen(t);
    while (len > 0 && isspace((unsigned char)t[len - 1])) {
        t[--len] = '\0';
    }
    return t;
}

/* The kernel expression just before `<<<` in what we have written: an identifier (possibly qualified with
 * ::) and optionally a template argument list, e.g. `sgemm_tiled<32>`. */
static void kernel_name_before(const Buffer *out, char *name, size_t name_size)
{
    size_t end = out->length;
    while (end > 0 && isspace((unsigned char)out->data[end - 1])) {
        end--;
    }
    size_t start = end;
    if (start > 0 && out->data[start - 1] == '>') {
        int depth = 0;
        while (start > 0) {
            char c = out->data[--start];
            depth += c == '>';
            depth -= c == '<';
            if (depth == 0) {
                break;
            }
        }
    }
    while (start > 0 && (is_ident((unsigned char)out->data[start - 1]) || out->data[start - 1] == ':')) {
        start--;
    }
    size_t len = end - start;
    if (len == 0 || len + 1 > name_size) {
        snprintf(name, name_size, "kernel");
        return;
    }
    size_t k = 0;
    for (size_t j = start; j < end; j++) {
        char c = out->data[j];
        if (c == '"' || c == '\\' || c == '\n') {
            continue;
        }
        name[k++] = c;
    }
    name[k] = '\0';
}

static void translate(const char *s, size_t n, Buffer *out)
{
    int depth = 0; /* brace depth: 0 is file scope */
    int in_launch = 0;
    int at_line_start = 1;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (at_line_start && c == '#') {
            /* A preprocessor line (with its continuations) is copied unchanged. */
            size_t j = i;
            while (j < n && !(s[j] == '\n' && s[j - 1] != '\\')) {
                j++;
            }
            buffer_append(out, s + i, j - i);
            i = j;
            continue;
        }
        if (c == '\n') {
            at_line_start = 1;
            buffer_append(out, &c, 1);
            i++;
            continue;
        }
        if (!isspace((unsigned char)c)) {
            at_line_start = 0;
        }
        if (copy_literal(s, n, &i, out)) {
            continue;
        }
        if (c == '{') {
            depth++;
        } else if (c == '}') {
            depth--;
        }
        if (strncmp(s + i, "<<<", 3) == 0) {
            if (in_launch) {
                fail(s, i, "'<<<' inside a launch configuration");
            }
            char name[256];
            kernel_name_before(out, name, sizeof name);
            buffer_printf(out, " | cusim::launch_config(\"%s\", __FILE__, __LINE__, ", name);
            in_launch = 1;
            i += 3;
            continue;
        }
        if (in_launch && strncmp(s + i, ">>>", 3) == 0) {
            buffer_append(out, ")", 1);
            in_launch = 0;
            i += 3;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            size_t j = i;
            while (j < n && is_ident((unsigned char)s[j])) {
                j++;
            }
            size_t word_len = j - i;
            int is_extern = word_len == 6 && strncmp(s + i, "extern", 6) == 0;
            size_t k = j;
            while (k < n && isspace((unsigned char)s[k])) {
                k++;
            }
            if (is_extern && strncmp(s + k, "__shared__", 10) == 0 && !is_ident((unsigned char)s[k + 10])) {
                /* extern __shared__ T name[];  ->  T *name = reinterpret_cast<T *>(cusim::dynamic_shared()); */
                if (depth == 0) {
                    fail(s, i, "declare `extern __shared__` arrays inside the kernel (the simulator needs it there)");
                }
                size_t semicolon = find_semicolon(s, n, k + 10);
                size_t len = semicolon - (k + 10);
                char *decl = malloc(len + 1);
                memcpy(decl, s + k + 10, len);
                decl[len] = '\0';
                strip_alignment(decl);
                char *bracket = strchr(decl, '[');
                char name[256];
                if (!bracket || strchr(decl, ',') ||
                    !declared_name(decl, (size_t)(bracket - decl), name, sizeof name)) {
                    fail(s, i, "expected `extern __shared__ TYPE NAME[];`");
                }
                /* The type is everything before the name. */
                char *name_at = NULL;
                for (char *p = decl; p < bracket; p++) {
                    if (strncmp(p, name, strlen(name)) == 0 && (p == decl || !is_ident((unsigned char)p[-1])) &&
                        !is_ident((unsigned char)p[strlen(name)])) {
                        name_at = p;
                    }
                }
                *name_at = '\0';
                char *type = trim(decl);
                buffer_printf(out, "%s *%s = reinterpret_cast<%s *>(cusim::dynamic_shared());", type, name, type);
                append_newlines(out, s, i, semicolon);
                free(decl);
                i = semicolon + 1;
                continue;
            }
            if (word_len == 10 && strncmp(s + i, "__shared__", 10) == 0) {
                if (depth == 0) {
                    buffer_append(out, "static", 6);
                    i = j;
                    continue;
                }
                size_t semicolon = find_semicolon(s, n, j);
                buffer_append(out, "static", 6);
                buffer_append(out, s + j, semicolon + 1 - j);
                /* One note per declarator (split at commas outside brackets and parentheses). */
                size_t piece = j;
                int nest = 0;
                for (size_t p = j; p <= semicolon; p++) {
                    char pc = s[p];
                    if (pc == '(' || pc == '[') {
                        nest++;
                    } else if (pc == ')' || pc == ']') {
                        nest--;
                    }
                    if ((pc == ',' && nest == 0) || p == semicolon) {
                        char name[256];
                        if (!declared_name(s + piece, p - piece, name, sizeof name)) {
                            fail(s, piece, "cannot find the name in this __shared__ declaration");
                        }
                        buffer_printf(out, " cusim::shared_declared(&%s, sizeof(%s), __FILE__, __LINE__);", name, name);
                        piece = p + 1;
                    }
                }
                i = semicolon + 1;
                continue;
            }
            buffer_append(out, s + i, word_len);
            i = j;
            continue;
        }
        buffer_append(out, &c, 1);
        i++;
    }
    if (in_launch) {
        fail(s, n, "a '<<<' launch without its '>>>'");
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cusim_translate INPUT.cu OUTPUT.cpp\n");
        return 2;
    }
    input_path = argv[1];
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    Buffer source = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, in)) > 0) {
        buffer_append(&source, chunk, got);
    }
    fclose(in);
    if (source.length == 0) {
        buffer_append(&source, "", 0);
    }
    Buffer out = {0};
    buffer_printf(&out, "#line 1 \"%s\"\n", argv[1]);
    translate(source.data, source.length, &out);
    /* Write next to the target and rename, so an interrupted build never leaves half a file. */
    char temp[4096];
    snprintf(temp, sizeof temp, "%s.tmp", argv[2]);
    FILE *f = fopen(temp, "wb");
    if (!f || fwrite(out.data, 1, out.length, f) != out.length || fclose(f) != 0) {
        perror(temp);
        return 1;
    }
    if (rename(temp, argv[2]) != 0) {
        perror(argv[2]);
        return 1;
    }
    free(source.data);
    free(out.data);
    return 0;
}
