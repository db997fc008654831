# markers.awk — reads the exercise markers in the course's C/CUDA sources; the engine behind
# `tools/course exercises` and `tools/course hint`. POSIX awk only (tested with mawk, Debian's default awk).
#
# You normally do not run this directly; tools/course does, from the repository root:
#
#   awk -f tools/markers.awk -v mode=scan FILE...
#       Validates every marker and prints one line per exercise, tab-separated:
#         ID  FILE  BEGIN_LINE  END_LINE  FUNCTION  STATE  LESSON  HINT  HINT_ZH
#       STATE is "solution" (a BEGIN/END EXERCISE region) or "stub" (a TODO left by the generator). HINT_ZH is
#       the Chinese hint (the text after " | zh: "), empty when the marker has none.
#       Malformed markers are reported as "FILE:LINE: error: ..." on stderr, and the exit status is 1.
#
#   awk -f tools/markers.awk -v mode=stub -v ids="ch01.relu ch01.tanh" FILE
#       Prints FILE with those regions replaced by stubs (ids="*" stubs every region in the file).
#
# The marker convention (see docs/instructors.md): a region is the WHOLE body of one function,
#
#     float relu(float x)
#     {
#         /* BEGIN EXERCISE ch01.relu: return x for x > 0, else 0 (about 1 line) | zh: x > 0 时返回 x，否则返回 0（约 1 行） */
#         ...solution...
#         /* END EXERCISE */
#     }
#
# the definition starting at column 0 and `{` / `}` alone at column 0. The Chinese hint after " | zh: " is
# optional; when the marker has "| zh:", the text after it must not be empty. The stub that replaces it is
#
#     /* TODO(ch01.relu): return x for x > 0, else 0 (about 1 line) | zh: x > 0 时返回 x，否则返回 0（约 1 行） */
#     (void)x;
#     course_todo("ch01.relu", "chapters/01-activations/README.md");
#     return 0;                                   (only when the function returns a value)
#
# plus `#include "exercise.h"` after the file's last #include when the file lacks it. If stubbing leaves a
# file-local (static) helper unused — it was called only by the solutions that were removed — the stub also
# gets `(void)helper;`, because -Wall would otherwise warn "defined but not used" and the student edition must
# build without warnings.

BEGIN {
    if (mode != "scan" && mode != "stub") {
        print "markers.awk: set -v mode=scan or -v mode=stub" > "/dev/stderr"
        exit 2
    }
    n_lines = 0
    errors = 0
    current_file = ""
    split(ids, wanted_list, " ")
    for (k in wanted_list) {
        wanted[wanted_list[k]] = 1
    }
    KEYWORDS = " if for while switch return sizeof do else case "
    TYPE_WORDS = " void char short int long float double signed unsigned const volatile restrict struct union enum _Bool bool size_t "
}

FNR == 1 && NR > 1 {
    process_file()
}

{
    current_file = FILENAME
    line = $0
    sub(/\r$/, "", line)
    L[++n_lines] = line
}

END {
    if (mode != "scan" && mode != "stub") {
        exit 2
    }
    if (n_lines > 0 || current_file != "") {
        process_file()
    }
    exit errors > 0 ? 1 : 0
}

function error_at(line_number, message) {
    printf "%s:%d: error: %s\n", current_file, line_number, message > "/dev/stderr"
    errors++
}

function trim(s) {
    sub(/^[ \t\n]+/, "", s)
    sub(/[ \t\n]+$/, "", s)
    return s
}

# The NN of the first path component that looks like "NN-name" (chapters/01-activations/...); sets
# CHAPTER_DIR to the path up to that component. "" when the file is not inside a chapter folder.
function chapter_of(path,    parts, n, i, dir) {
    n = split(path, parts, "/")
    dir = ""
    for (i = 1; i < n; i++) {
        dir = (i == 1 ? parts[i] : dir "/" parts[i])
        if (parts[i] ~ /^[0-9][0-9]-/) {
            CHAPTER_DIR = dir
            return substr(parts[i], 1, 2)
        }
    }
    CHAPTER_DIR = ""
    return ""
}

# CODE[i]: line i with comments and the contents of string and character literals blanked out, so that
# parentheses and identifiers are only counted where the compiler sees them. Block comments may span lines.
function strip_comments(    i, s, out, k, c, c2, in_block, quote) {
    in_block = 0
    for (i = 1; i <= n_lines; i++) {
        s = L[i]
        out = ""
        quote = ""
        for (k = 1; k <= length(s); k++) {
            c = substr(s, k, 1)
            c2 = substr(s, k, 2)
            if (in_block) {
                if (c2 == "*/") {
                    in_block = 0
                    k++
                    out = out "  "
                } else {
                    out = out " "
                }
            } else if (quote != "") {
                if (c == "\\") {
                    out = out "  "
                    k++
                } else if (c == quote) {
                    out = out c
                    quote = ""
                } else {
                    out = out " "
                }
            } else if (c2 == "/*") {
                in_block = 1
                k++
                out = out "  "
            } else if (c2 == "//") {
                break
            } else if (c == "\"" || c == "'") {
                quote = c
                out = out c
            } else {
                out = out c
            }
        }
        CODE[i] = out
    }
}

# Parses the function definition whose body opens with the `{` on line brace_line. On success returns "" and
# sets SIG_NAME, SIG_VOID (1 when it returns nothing), SIG_PARAMS (parameter names, space-separated) and
# SIG_FIRST (its first line); otherwise returns what is wrong.
function parse_signature(brace_line,    j, k, c, text, depth, seen, close_pos, open_pos, before, ret, inner,
                         n, parts, i, p, name, prev) {
    text = ""
    depth = 0
    seen = 0
    for (j = brace_line - 1; j >= 1 && j >= brace_line - 40; j--) {
        text = CODE[j] " " text
        for (k = length(CODE[j]); k >= 1; k--) {
            c = substr(CODE[j], k, 1)
            if (c == ")") {
                depth++
            } else if (c == "(") {
                depth--
                seen = 1
            }
        }
        if (seen && depth == 0) {
            break
        }
    }
    if (!(seen && depth == 0)) {
        return "no function signature (a parameter list in parentheses) above the `{`"
    }
    SIG_FIRST = j
    if (L[j] !~ /^[A-Za-z_]/) {
        return "the function definition must start at column 0 (line " j ")"
    }
    text = trim(text)
    if (substr(text, length(text), 1) != ")") {
        return "the line above `{` must end the parameter list with `)`"
    }
    close_pos = length(text)
    depth = 0
    for (k = close_pos; k >= 1; k--) {
        c = substr(text, k, 1)
        if (c == ")") {
            depth++
        } else if (c == "(") {
            depth--
            if (depth == 0) {
                break
            }
        }
    }
    open_pos = k
    before = trim(substr(text, 1, open_pos - 1))
    if (!match(before, /[A-Za-z_][A-Za-z0-9_]*$/)) {
        return "no function name before the parameter list"
    }
    name = substr(before, RSTART)
    if (index(KEYWORDS, " " name " ") > 0) {
        return "`" name " (...)` is not a function definition"
    }
    SIG_NAME = name
    ret = trim(substr(before, 1, RSTART - 1))
    if (ret == "" && j > 1) {
        prev = trim(CODE[j - 1])
        if (L[j - 1] ~ /^[A-Za-z_]/ && prev !~ /[;})]$/ && prev !~ /^#/) {
            ret = prev
        }
    }
    if (ret == "") {
        return "no return type before " name "()"
    }
    gsub(/(^|[ \t])(static|inline|extern|__inline__|__forceinline__|__global__|__device__|__host__|_Noreturn)[ \t]/, " ", ret)
    gsub(/(^|[ \t])(static|inline|extern|__inline__|__forceinline__|__global__|__device__|__host__|_Noreturn)[ \t]/, " ", ret)
    ret = trim(ret)
    # A qualifier macro before the return type (`AUGMENT_FUNCTION void f(...)`, where the macro expands to
    # `static inline` or `__host__ __device__`) is not part of the type: ALL-CAPS words before a bare `void`
    # still mean a function without a result. (A caps type name such as FILE is never followed by `void`.)
    SIG_VOID = (ret == "void" || ret ~ /^([A-Z_][A-Z0-9_]*[ \t]+)+void$/) ? 1 : 0

    # Parameters: split at the commas outside () and [], then take the last identifier of each declaration
    # after dropping array suffixes ("const float *restrict x" -> x, "float a[][3]" -> a).
    inner = substr(text, open_pos + 1, close_pos - open_pos - 1)
    SIG_PARAMS = ""
    n = 0
    depth = 0
    p = ""
    for (k = 1; k <= length(inner); k++) {
        c = substr(inner, k, 1)
        if (c == "(" || c == "[") {
            depth++
        } else if (c == ")" || c == "]") {
            depth--
        }
        if (c == "," && depth == 0) {
            parts[++n] = p
            p = ""
        } else {
            p = p c
        }
    }
    parts[++n] = p
    for (i = 1; i <= n; i++) {
        p = trim(parts[i])
        if (p == "" || p == "..." || (p == "void" && n == 1)) {
            continue
        }
        if (index(p, "(") > 0) {
            return "parameter `" p "`: function-pointer parameters are not supported in an exercise function (use a typedef)"
        }
        while (sub(/[ \t]*\[[^]]*\][ \t]*$/, "", p)) {
        }
        if (!match(p, /[A-Za-z_][A-Za-z0-9_]*$/) || RSTART == 1) {
            return "parameter `" trim(parts[i]) "` has no name"
        }
        name = substr(p, RSTART)
        if (index(TYPE_WORDS, " " name " ") > 0) {
            return "parameter `" trim(parts[i]) "` has no name"
        }
        SIG_PARAMS = SIG_PARAMS (SIG_PARAMS == "" ? "" : " ") name
    }
    return ""
}

# Splits a marker's hint "English | zh: 中文" into HINT_EN and HINT_ZH (empty when there is no "| zh:").
# Returns "" or what is wrong: an empty text on either side of "| zh:", or a second "| zh:".
function split_hint(hint,    k, rest) {
    HINT_EN = hint
    HINT_ZH = ""
    if (!match(hint, /\|[ \t]*zh[ \t]*:/)) {
        return ""
    }
    HINT_EN = trim(substr(hint, 1, RSTART - 1))
    rest = substr(hint, RSTART + RLENGTH)
    HINT_ZH = trim(rest)
    if (HINT_EN == "") {
        return "the English hint before \"| zh:\" is empty; write it as /* BEGIN EXERCISE chNN.name: English hint | zh: 中文提示 */"
    }
    if (HINT_ZH == "") {
        return "the Chinese hint after \"| zh:\" is empty; write the Chinese text there, or drop \"| zh:\""
    }
    if (match(rest, /\|[ \t]*zh[ \t]*:/)) {
        return "the marker has \"| zh:\" twice; one Chinese hint per marker"
    }
    return ""
}

# Finds the regions of the file in L[1..n_lines]: R_ID[r], R_BEGIN[r], R_END[r], R_STATE[r], R_HINT[r],
# R_HINT_ZH[r], R_FUNC[r], R_VOID[r], R_PARAMS[r], R_INDENT[r]; n_regions of them. Reports malformed markers.
function find_regions(    i, s, chapter, open_id, open_line, open_hint, open_hint_zh, id, hint, why, r, body_ok, nested) {
    n_regions = 0
    chapter = chapter_of(current_file)
    LESSON = CHAPTER_DIR "/README.md"
    open_id = ""
    nested = 0
    for (i = 1; i <= n_lines; i++) {
        s = L[i]
        if (s ~ /^[ \t]*(\/\*|\/\/)[ \t]*BEGIN[ \t]+EXERCISE/) {
            if (s !~ /^[ \t]*\/\* BEGIN EXERCISE [^ :]+: .*[^ ].* \*\/[ \t]*$/) {
                error_at(i, "malformed marker; write it as /* BEGIN EXERCISE chNN.name: hint for the learner */")
                if (open_id == "") {
                    open_id = "(malformed)"
                    open_line = i
                } else {
                    nested++
                }
                continue
            }
            id = s
            sub(/^[ \t]*\/\* BEGIN EXERCISE /, "", id)
            hint = substr(id, index(id, ":") + 2)
            id = substr(id, 1, index(id, ":") - 1)
            sub(/[ \t]*\*\/[ \t]*$/, "", hint)
            hint = trim(hint)
            gsub(/\t/, " ", hint)
            why = split_hint(hint)
            if (why != "") {
                error_at(i, "exercise " id ": " why)
            }
            hint = HINT_EN
            if (open_id != "") {
                error_at(i, "BEGIN EXERCISE " id " inside the region of " open_id " (opened at line " open_line "): regions cannot nest; each one is a whole function body")
                nested++
                continue
            }
            if (id !~ /^ch[0-9][0-9]\.[a-z][a-z0-9_]*$/) {
                error_at(i, "exercise ID `" id "` must look like chNN.snake_case_name (e.g. ch01.relu)")
            } else if (chapter == "") {
                error_at(i, "exercise " id " is not inside a chapter folder (chapters/NN-name/)")
            } else if (substr(id, 3, 2) != chapter) {
                error_at(i, "exercise " id " is in the folder of chapter " chapter " (" CHAPTER_DIR "): its ID must start with ch" chapter ".")
            }
            open_id = id
            open_line = i
            open_hint = hint
            open_hint_zh = HINT_ZH
            continue
        }
        if (s ~ /^[ \t]*(\/\*|\/\/)[ \t]*END[ \t]+EXERCISE/) {
            if (s !~ /^[ \t]*\/\* END EXERCISE \*\/[ \t]*$/) {
                error_at(i, "malformed marker; write it as /* END EXERCISE */")
                continue
            }
            if (open_id == "") {
                error_at(i, "END EXERCISE without a BEGIN EXERCISE above it")
                continue
            }
            if (nested > 0) {
                nested--
                continue
            }
            if (open_id == "(malformed)") {
                open_id = ""
                continue
            }
            body_ok = 1
            if (open_line < 2 || L[open_line - 1] !~ /^\{[ \t]*$/) {
                error_at(open_line, "region " open_id " is not a whole function body: the line above BEGIN EXERCISE must be the function's `{`, alone at column 0")
                body_ok = 0
            }
            if (i == n_lines || L[i + 1] !~ /^\}[ \t]*$/) {
                error_at(i, "region " open_id " is not a whole function body: the line below END EXERCISE must be the function's closing `}`, alone at column 0")
                body_ok = 0
            }
            if (body_ok) {
                why = parse_signature(open_line - 1)
                if (why != "") {
                    error_at(open_line, "region " open_id " is not a whole function body: " why)
                    body_ok = 0
                }
            }
            if (body_ok) {
                r = ++n_regions
                R_ID[r] = open_id
                R_BEGIN[r] = open_line
                R_END[r] = i
                R_STATE[r] = "solution"
                R_HINT[r] = open_hint
                R_HINT_ZH[r] = open_hint_zh
                R_FUNC[r] = SIG_NAME
                R_VOID[r] = SIG_VOID
                R_PARAMS[r] = SIG_PARAMS
                R_INDENT[r] = L[open_line]
                sub(/[^ \t].*$/, "", R_INDENT[r])
            }
            open_id = ""
            continue
        }
        # A stub the generator wrote earlier (this is a student edition): listed so that `hint` still works.
        if (open_id == "" && s ~ /^[ \t]*\/\* TODO\(ch[0-9][0-9]\.[a-z][a-z0-9_]*\): .* \*\/[ \t]*$/) {
            id = s
            sub(/^[ \t]*\/\* TODO\(/, "", id)
            hint = substr(id, index(id, ":") + 2)
            id = substr(id, 1, index(id, ")") - 1)
            sub(/[ \t]*\*\/[ \t]*$/, "", hint)
            gsub(/\t/, " ", hint)
            split_hint(trim(hint))
            r = ++n_regions
            R_ID[r] = id
            R_BEGIN[r] = i
            R_END[r] = i
            R_STATE[r] = "stub"
            R_HINT[r] = HINT_EN
            R_HINT_ZH[r] = HINT_ZH
            R_FUNC[r] = "?"
            if (i > 1 && L[i - 1] ~ /^\{[ \t]*$/ && parse_signature(i - 1) == "") {
                R_FUNC[r] = SIG_NAME
            }
        }
    }
    if (open_id != "") {
        error_at(open_line, "BEGIN EXERCISE " open_id " has no END EXERCISE")
    }
}

function process_file(    r, where) {
    strip_comments()
    find_regions()
    if (mode == "scan") {
        for (r = 1; r <= n_regions; r++) {
            where = current_file ":" R_BEGIN[r]
            if (R_STATE[r] == "solution") {
                if (R_ID[r] in SEEN_AT) {
                    printf "%s:%d: error: duplicate exercise ID %s (also at %s)\n", current_file, R_BEGIN[r], R_ID[r], SEEN_AT[R_ID[r]] > "/dev/stderr"
                    errors++
                    continue
                }
                SEEN_AT[R_ID[r]] = where
            }
            printf "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", R_ID[r], current_file, R_BEGIN[r], R_END[r], R_FUNC[r], R_STATE[r], LESSON, R_HINT[r], R_HINT_ZH[r]
        }
    } else {
        write_stubbed()
    }
    n_lines = 0
    split("", L)
    split("", CODE)
}

# True when identifier `name` occurs in text s as a whole word.
function has_identifier(s, name,    k, before, after) {
    while ((k = index(s, name)) > 0) {
        before = (k == 1) ? "" : substr(s, k - 1, 1)
        after = substr(s, k + length(name), 1)
        if (before !~ /[A-Za-z0-9_]/ && after !~ /[A-Za-z0-9_]/) {
            return 1
        }
        s = substr(s, k + length(name))
    }
    return 0
}

# File-scope static definitions and declarations in CODE[1..n_lines]: S_NAME[s], S_FROM[s], S_TO[s]
# (the lines they span); n_statics of them.
function find_statics(    i, j, s, cut, k, c, name, depth, opened) {
    n_statics = 0
    for (i = 1; i <= n_lines; i++) {
        s = CODE[i]
        if (s !~ /^static[ \t]/) {
            continue
        }
        cut = 0
        for (k = 1; k <= length(s); k++) {
            c = substr(s, k, 1)
            if (c == "(" || c == "[" || c == "=" || c == ";") {
                cut = k
                break
            }
        }
        if (cut == 0 || !match(trim(substr(s, 1, cut - 1)), /[A-Za-z_][A-Za-z0-9_]*$/)) {
            continue
        }
        name = substr(trim(substr(s, 1, cut - 1)), RSTART)
        # It ends at the `}` that closes its braces, or at a `;` before any brace opened.
        depth = 0
        opened = 0
        for (j = i; j <= n_lines; j++) {
            for (k = 1; k <= length(CODE[j]); k++) {
                c = substr(CODE[j], k, 1)
                if (c == "{") {
                    depth++
                    opened = 1
                } else if (c == "}") {
                    depth--
                } else if (c == ";" && !opened) {
                    break
                }
            }
            if ((opened && depth <= 0) || (!opened && k <= length(CODE[j]))) {
                break
            }
        }
        n_statics++
        S_NAME[n_statics] = name
        S_FROM[n_statics] = i
        S_TO[n_statics] = j
    }
}

# How many lines outside the static's own declarations mention it; lines in [skip_from, skip_to] (a region
# being stubbed) do not count.
function count_uses(name, skip_from, skip_to,    i, s, inside, uses) {
    uses = 0
    for (i = 1; i <= n_lines; i++) {
        if (i >= skip_from && i <= skip_to) {
            continue
        }
        inside = 0
        for (s = 1; s <= n_statics; s++) {
            if (S_NAME[s] == name && i >= S_FROM[s] && i <= S_TO[s]) {
                inside = 1
            }
        }
        if (!inside && has_identifier(CODE[i], name)) {
            uses++
        }
    }
    return uses
}

function write_stubbed(    r, i, k, s, nm, params, n_params, stubbed, inside, last_include, has_exercise_h, depth, best_depth,
                           used_outside, used_in, first_user) {
    for (r = 1; r <= n_regions; r++) {
        STUB[r] = (R_STATE[r] == "solution" && (ids == "*" || (R_ID[r] in wanted))) ? 1 : 0
    }
    # Lines that survive stubbing: every line outside the stubbed regions.
    for (i = 1; i <= n_lines; i++) {
        KEEP[i] = 1
    }
    for (r = 1; r <= n_regions; r++) {
        if (STUB[r]) {
            for (i = R_BEGIN[r]; i <= R_END[r]; i++) {
                KEEP[i] = 0
            }
        }
    }
    # Static helpers that only the removed solutions used: mention them in the first stub that used them.
    find_statics()
    split("", HELPERS)
    split("", DONE)
    for (s = 1; s <= n_statics; s++) {
        nm = S_NAME[s]
        if (nm in DONE) {
            continue
        }
        DONE[nm] = 1
        used_outside = 0
        first_user = 0
        for (i = 1; i <= n_lines; i++) {
            if (!has_identifier(CODE[i], nm)) {
                continue
            }
            inside = 0
            for (k = 1; k <= n_statics; k++) {
                if (S_NAME[k] == nm && i >= S_FROM[k] && i <= S_TO[k]) {
                    inside = 1
                }
            }
            if (inside) {
                continue
            }
            if (KEEP[i]) {
                used_outside = 1
            } else if (first_user == 0) {
                for (r = 1; r <= n_regions; r++) {
                    if (STUB[r] && i >= R_BEGIN[r] && i <= R_END[r]) {
                        first_user = r
                    }
                }
            }
        }
        if (!used_outside && first_user > 0) {
            HELPERS[first_user] = HELPERS[first_user] " " nm
        }
    }

    # The last #include outside any #if block: with #ifdef _OPENMP / #include <omp.h> / #endif at the end, the
    # new include must not land inside the condition. (In a header, "outside" means inside its include guard:
    # the least nested level that holds an #include.)
    has_exercise_h = 0
    last_include = 0
    best_depth = -1
    depth = 0
    for (i = 1; i <= n_lines; i++) {
        if (L[i] ~ /^[ \t]*#[ \t]*include[ \t]*"exercise\.h"/) {
            has_exercise_h = 1
        }
        if (L[i] ~ /^[ \t]*#[ \t]*if/) {
            depth++
        } else if (L[i] ~ /^[ \t]*#[ \t]*endif/) {
            depth--
        } else if (L[i] ~ /^[ \t]*#[ \t]*include/ && (best_depth < 0 || depth <= best_depth)) {
            best_depth = depth
            last_include = i
        }
    }
    stubbed = 0
    for (r = 1; r <= n_regions; r++) {
        stubbed += STUB[r]
    }
    if (stubbed > 0 && !has_exercise_h && last_include == 0) {
        print "#include \"exercise.h\""
    }
    r = 1
    for (i = 1; i <= n_lines; i++) {
        while (r <= n_regions && R_END[r] < i) {
            r++
        }
        if (r <= n_regions && STUB[r] && i == R_BEGIN[r]) {
            print R_INDENT[r] "/* TODO(" R_ID[r] "): " R_HINT[r] (R_HINT_ZH[r] != "" ? " | zh: " R_HINT_ZH[r] : "") " */"
            n_params = split(R_PARAMS[r], params, " ")
            for (k = 1; k <= n_params; k++) {
                print R_INDENT[r] "(void)" params[k] ";"
            }
            n_params = split(HELPERS[r], params, " ")
            for (k = 1; k <= n_params; k++) {
                print R_INDENT[r] "(void)" params[k] "; /* a helper defined above, which the solution uses */"
            }
            print R_INDENT[r] "course_todo(\"" R_ID[r] "\", \"" LESSON "\");"
            if (!R_VOID[r]) {
                print R_INDENT[r] "return 0;"
            }
            continue
        }
        if (!KEEP[i]) {
            continue
        }
        print L[i]
        if (stubbed > 0 && !has_exercise_h && i == last_include) {
            print "#include \"exercise.h\""
        }
    }
}
