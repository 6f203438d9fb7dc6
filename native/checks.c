/* The vectorised plausibility checks of field-only rules (spillguard/detect/checks.py), one pass per column.
 *
 * Each returns one verdict byte per value: 1 passes, 0 fails, 2 not decided here (bytes above ASCII where Unicode
 * rules could decide otherwise); the caller runs its Arrow path on the undecided values, so every check equals
 * that path (tests/detect/test_entropy_native.py, test_checks_native.py). Nulls must be filled with "".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "native.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* RE2's \s, which the former path's patterns used: tab, newline, form feed, carriage return, space (not \v). */
static inline int re2_space(unsigned char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\f' || ch == '\r'; }

/* Authorization scheme words (lower case, ASCII), from the caller: the one list is checks._SCHEME_WORDS. */
#define MAX_SCHEMES 16
typedef struct {
    const unsigned char *word[MAX_SCHEMES];
    int64_t len[MAX_SCHEMES];
    int count;
    int64_t longest;
} Schemes;

/* The words of `list` ("bearer\nbasic\n..."), or -1 with the error set. */
static int schemes_from(const Py_buffer *list, Schemes *out) {
    memset(out, 0, sizeof(*out));
    const unsigned char *p = (const unsigned char *)list->buf, *end = p + list->len;
    while (p < end) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = nl ? nl : end;
        if (stop > p) {
            if (out->count == MAX_SCHEMES) {
                PyErr_SetString(PyExc_ValueError, "too many scheme words");
                return -1;
            }
            out->word[out->count] = p;
            out->len[out->count] = stop - p;
            if (stop - p > out->longest) out->longest = stop - p;
            out->count++;
        }
        p = stop + 1;
    }
    return 0;
}

/* Length of a scheme word (any ASCII case) followed by at least one space at src[a, b), spaces included; 0 when
 * there is none. */
static int64_t scheme_prefix(const Schemes *schemes, const unsigned char *src, int64_t a, int64_t b) {
    for (int w = 0; w < schemes->count; w++) {
        int64_t len = schemes->len[w], k = 0;
        if (b - a <= len) continue;
        while (k < len && (src[a + k] | 0x20) == schemes->word[w][k]) k++;
        if (k < len || !re2_space(src[a + len])) continue;
        int64_t end = a + len;
        while (end < b && re2_space(src[end])) end++;
        return end - a;
    }
    return 0;
}

/* c * log2(c) for the counts a short value holds, computed once. */
#define CLOG_SIZE 1024
static double clog_table[CLOG_SIZE];
static int clog_ready = 0;

static void clog_init(void) {
    if (clog_ready) return;
    clog_table[0] = 0.0;
    for (int c = 1; c < CLOG_SIZE; c++) clog_table[c] = (double)c * log2((double)c);
    clog_ready = 1;
}

#define BOUND_MAX_LEN 256

/* Whether src[a, b) holds no RE2 space and value_entropy(src, a, b) >= threshold. Up to BOUND_MAX_LEN bytes a first
 * pass notes which bytes occur (the spaces among them): d distinct bytes in len give at least the entropy of one byte
 * taking len - d + 1 places and the others one each (sum(c * log2 c) is convex: largest at that corner), which
 * decides most short credentials (a 40-byte token of 28 distinct bytes: >= 4.4 bits) without counting; longer values
 * rarely reach 3 bits that way (printable ASCII's 95 bytes: not past ~290 bytes). Otherwise the bytes are counted and the
 * entropy taken without a log2 per distinct byte: log2(len) - sum(c * log2 c) / len, from a table. Both forms can
 * differ from value_entropy's sum in their last bits, so neither decides within 1e-9 of the threshold, where
 * value_entropy itself does. counts must be all zero and is left so. */
static int spaceless_entropy_at_least(const unsigned char *src, int64_t a, int64_t b, uint32_t counts[256], double threshold) {
    int64_t len = b - a;
    if (len <= 0) return 0.0 >= threshold;
    if (len >= CLOG_SIZE) {
        for (int64_t k = a; k < b; k++)
            if (re2_space(src[k])) return 0;
        return value_entropy(src, a, b, counts) >= threshold;
    }
    const uint64_t spaces = (1ull << ' ') | (1ull << '\t') | (1ull << '\n') | (1ull << '\f') | (1ull << '\r');
    uint64_t seen[4] = {0, 0, 0, 0};
    int counted_seen = 0;
    if (len <= BOUND_MAX_LEN) {
        for (int64_t k = a; k < b; k++) seen[src[k] >> 6] |= (uint64_t)1 << (src[k] & 63);
        if (seen[0] & spaces) return 0;
        int64_t d = __builtin_popcountll(seen[0]) + __builtin_popcountll(seen[1]) + __builtin_popcountll(seen[2]) +
                    __builtin_popcountll(seen[3]);
        if (log2((double)len) - clog_table[len - d + 1] / (double)len >= threshold + 1e-9) return 1;
        for (int64_t k = a; k < b; k++) counts[src[k]]++;
    } else {
        for (int64_t k = a; k < b; k++) {
            unsigned char ch = src[k];
            counts[ch]++;
            seen[ch >> 6] |= (uint64_t)1 << (ch & 63);
        }
        counted_seen = 1;
    }
    double s = 0.0;
    for (int w = 0; w < 4; w++) {
        uint64_t bits = seen[w];
        while (bits) {
            int v = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
            s += clog_table[counts[v]];
            counts[v] = 0;
        }
    }
    if (counted_seen && (seen[0] & spaces)) return 0;
    double h = log2((double)len) - s / (double)len;
    if (fabs(h - threshold) > 1e-9) return h >= threshold;
    return value_entropy(src, a, b, counts) >= threshold;
}

/* secret_check(offsets, data, start, n, wide, min_len, max_len, min_entropy, schemes) -> bytes of n uint8
 *
 * The `secret` check of credential-named fields in one pass: after an authorization scheme word of `schemes`
 * ("bearer\nbasic\n...") and its spaces ("Bearer <token>"), the value must hold no space, be min_len..max_len bytes
 * long and have at least min_entropy bits per byte. 1: passes, 0: fails, 2: not decided here (a byte above ASCII
 * among the first 4 x the longest word's bytes, where Unicode case folding, e.g. U+017F for 's', could make a scheme
 * word the caller's regular expression strips). Nulls must be filled with "" by the caller. */
PyObject *native_secret_check(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n, min_len, max_len;
    int wide;
    double min_entropy;
    Py_buffer list;
    if (!PyArg_ParseTuple(args, "OOnnpnndy*", &off_obj, &data_obj, &start, &n, &wide, &min_len, &max_len, &min_entropy, &list)) return NULL;
    Schemes schemes; /* its words point into `list`, released at the end */
    Column c;
    if (schemes_from(&list, &schemes) < 0 || column_open(&c, off_obj, data_obj, start, n, wide) < 0) {
        PyBuffer_Release(&list);
        return NULL;
    }
    clog_init();
    int64_t window = 4 * schemes.longest; /* bytes where a folded non-ASCII letter could spell a scheme word */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        uint32_t counts[256] = {0};
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            int unsure = 0;
            for (int64_t k = a; k < b && k < a + window; k++) unsure |= src[k] >= 0x80;
            if (unsure) {
                dst[i] = 2;
                continue;
            }
            a += scheme_prefix(&schemes, src, a, b);
            int64_t len = b - a;
            dst[i] = (unsigned char)(len >= min_len && len <= max_len && spaceless_entropy_at_least(src, a, b, counts, min_entropy));
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    PyBuffer_Release(&list);
    return out;
}

/* byte_set(offsets, data, start, n, wide) -> 32 bytes: bit b set when some value holds byte b (a 256-bit set, little
 * endian: byte b >> 3, bit b & 7). What the rules can match in a column follows from it (detect/alphabet.py), and
 * a set without bytes above ASCII says the column is valid UTF-8 without a decoding pass. */
/* The bytes of src[a..b) as a 256-bit set (bits[v >> 3] bit v & 7): eight tables, so that runs of one byte do not
 * store to one address back to back, filled from one load of eight bytes (1.7 times the speed of four tables and
 * a load per byte). */
static void mark_bytes(const unsigned char *src, int64_t a, int64_t b, unsigned char bits[32]) {
    unsigned char seen[8][256];
    memset(seen, 0, sizeof(seen));
    int64_t k = a;
    for (; k + 8 <= b; k += 8) {
        uint64_t w;
        memcpy(&w, src + k, 8);
        for (int t = 0; t < 8; t++) seen[t][(w >> (8 * t)) & 0xFF] = 1;
    }
    for (; k < b; k++) seen[0][src[k]] = 1;
    memset(bits, 0, 32);
    for (int v = 0; v < 256; v++) {
        unsigned char any = 0;
        for (int t = 0; t < 8; t++) any |= seen[t][v];
        if (any) bits[v >> 3] |= (unsigned char)(1u << (v & 7));
    }
}

PyObject *native_byte_set(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    if (column_from_args(args, &c) < 0) return NULL;
    const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
    int64_t a = c.n ? column_offset(&c, 0) : 0, b = c.n ? column_offset(&c, c.n) : 0;
    unsigned char bits[32];
    Py_BEGIN_ALLOW_THREADS
    mark_bytes(src, a, b, bits);
    Py_END_ALLOW_THREADS
    column_close(&c);
    return PyBytes_FromStringAndSize((const char *)bits, 32);
}

/* byte_runs(offsets, data, start, n, wide, table) -> 48 bytes: byte_set's 32, then per class k (16 lanes) the longest
 * run of consecutive bytes of one value that all belong to class k, saturating at 255. `table` is 256 x 16 bytes:
 * table[16 b + k] is 0xFF when byte b belongs to class k, else 0 (the caller decides the classes, and puts every byte
 * above ASCII in all of them). A rule whose every match holds a longer run of some class cannot match in the column
 * (detect/alphabet.py). Runs end at value boundaries. */
#define RUN_LANES 16
#if defined(__SSE2__)
typedef __m128i Lanes;
static inline Lanes lanes_zero(void) { return _mm_setzero_si128(); }
/* one step of every class's run at once: +1 (saturating) where the byte is of the class, else 0 */
static inline Lanes lanes_step(Lanes run, const unsigned char *in) {
    return _mm_and_si128(_mm_adds_epu8(run, _mm_set1_epi8(1)), _mm_loadu_si128((const __m128i *)in));
}
static inline Lanes lanes_max(Lanes a, Lanes b) { return _mm_max_epu8(a, b); }
static inline void lanes_store(unsigned char *out, Lanes v) { _mm_storeu_si128((__m128i *)out, v); }
#else
typedef struct {
    unsigned char v[RUN_LANES];
} Lanes;
static inline Lanes lanes_zero(void) {
    Lanes z;
    memset(&z, 0, sizeof(z));
    return z;
}
static inline Lanes lanes_step(Lanes run, const unsigned char *in) {
    for (int j = 0; j < RUN_LANES; j++) run.v[j] = in[j] ? (unsigned char)(run.v[j] + (run.v[j] < 255)) : 0;
    return run;
}
static inline Lanes lanes_max(Lanes a, Lanes b) {
    for (int j = 0; j < RUN_LANES; j++) a.v[j] = a.v[j] > b.v[j] ? a.v[j] : b.v[j];
    return a;
}
static inline void lanes_store(unsigned char *out, Lanes v) { memcpy(out, v.v, RUN_LANES); }
#endif

PyObject *native_byte_runs(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    Py_buffer table;
    if (column_and_table_from_args(args, &c, &table, 256 * RUN_LANES, "table") < 0) return NULL;
    const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
    const unsigned char *tab = (const unsigned char *)table.buf;
    unsigned char out[32 + RUN_LANES] = {0};
    Py_BEGIN_ALLOW_THREADS
    unsigned char seen[256];
    memset(seen, 0, sizeof(seen));
    Lanes top = lanes_zero();
    for (Py_ssize_t i = 0; i < c.n; i++) {
        const unsigned char *p = src + column_offset(&c, i), *end = src + column_offset(&c, i + 1);
        Lanes run = lanes_zero();
        for (; p < end; p++) {
            seen[*p] = 1; /* (in this loop, which waits on each byte's step anyway: free; a pass of its own is not) */
            run = lanes_step(run, tab + RUN_LANES * (size_t)*p);
            top = lanes_max(top, run);
        }
    }
    for (int v = 0; v < 256; v++)
        if (seen[v]) out[v >> 3] |= (unsigned char)(1u << (v & 7));
    lanes_store(out + 32, top);
    Py_END_ALLOW_THREADS
    column_close(&c);
    PyBuffer_Release(&table);
    return PyBytes_FromStringAndSize((const char *)out, 32 + RUN_LANES);
}

/* any_byte(offsets, data, start, n, wide, table) -> bytes of n uint8
 *
 * Per value, whether any of its bytes is flagged in `table` (256 bytes, non-zero: flagged; only ASCII entries are
 * read): 1 when an ASCII byte is flagged, 0 when none is and every byte is ASCII, 2 when none is but the value
 * holds bytes above ASCII, which the caller decides by the test itself. Nulls must be filled with "". */
PyObject *native_any_byte(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    Py_buffer table;
    if (column_and_table_from_args(args, &c, &table, 256, "table") < 0) return NULL;
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        unsigned char flag[256]; /* 1: flagged ASCII byte, 2: a byte above ASCII, 0: neither */
        for (int b = 0; b < 256; b++) flag[b] = b >= 0x80 ? 2 : (((const unsigned char *)table.buf)[b] != 0);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            unsigned char seen = 0;
            for (int64_t k = a; k < b; k++) {
                seen |= flag[src[k]];
                if (seen & 1) break;
            }
            dst[i] = (seen & 1) ? 1 : seen; /* 1, 2 (only unflagged ASCII and bytes above it) or 0 */
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    PyBuffer_Release(&table);
    return out;
}

/* name_shape(offsets, data, start, n, wide, classes, max_len) -> bytes of n uint8
 *
 * The person_name check for values of code points below U+0800 (ASCII, Latin, Greek, Cyrillic, ...) and ’: trimmed
 * of whitespace, a letter, then letters, marks, spaces, . ' ’ -, and a last letter, mark or full stop, 2..max_len
 * characters. `classes` holds a byte per code point below U+0800, made by the caller with Arrow's own kernels
 * (1 letter, 2 inner punctuation, 4 whitespace its trim removes, 16 mark, 32 the full stop). 2: a value with other
 * code points (or over 1024 of them), decided by the caller. */
#define NAME_CPS 1024
PyObject *native_name_shape(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n, max_len;
    int wide;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "OOnnpy*n", &off_obj, &data_obj, &start, &n, &wide, &table, &max_len)) return NULL;
    if (table.len != 0x800) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "classes must be 2048 bytes");
        return NULL;
    }
    Column c;
    if (column_open(&c, off_obj, data_obj, start, n, wide) < 0) {
        PyBuffer_Release(&table);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        const unsigned char *cls = (const unsigned char *)table.buf;
        Py_BEGIN_ALLOW_THREADS
        unsigned char cps[NAME_CPS];
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t k = column_offset(&c, i), b = column_offset(&c, i + 1);
            int count = 0, undecided = 0;
            while (k < b && !undecided) {
                unsigned char ch = src[k];
                unsigned char kind;
                if (ch < 0x80) {
                    kind = cls[ch];
                    k += 1;
                } else if (ch >= 0xC2 && ch <= 0xDF && k + 1 < b && (src[k + 1] & 0xC0) == 0x80) {
                    kind = cls[((ch & 0x1F) << 6) | (src[k + 1] & 0x3F)];
                    k += 2;
                } else if (ch == 0xE2 && k + 2 < b && src[k + 1] == 0x80 && src[k + 2] == 0x99) {
                    kind = 2; /* ’ */
                    k += 3;
                } else {
                    undecided = 1;
                    break;
                }
                if (count == NAME_CPS) undecided = 1;
                else cps[count++] = kind;
            }
            if (undecided) {
                dst[i] = 2;
                continue;
            }
            int lo = 0, hi = count;
            while (lo < hi && (cps[lo] & 4)) lo++;
            while (hi > lo && (cps[hi - 1] & 4)) hi--;
            int len = hi - lo;
            int ok = len >= 2 && len <= max_len && (cps[lo] & 1) && (cps[hi - 1] & (1 | 16 | 32));
            for (int j = lo + 1; ok && j < hi - 1; j++) ok = (cps[j] & (1 | 2 | 16)) != 0;
            dst[i] = (unsigned char)ok;
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    PyBuffer_Release(&table);
    return out;
}

static inline int re2_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* Where a trailing phone extension begins ("x12", " ext. 7", "#3": RE2 (?i)\s*(?:x|ext\.?|#)\s*[0-9]{1,6}$, the
 * leftmost start of its match), or b when there is none. */
static int64_t extension_start(const unsigned char *s, int64_t a, int64_t b) {
    int64_t k = b;
    while (k > a && re2_digit(s[k - 1])) k--;
    if (k == b || b - k > 6) return b; /* 1..6 digits, and not the tail of a longer run */
    while (k > a && re2_space(s[k - 1])) k--;
    if (k == a) return b;
    unsigned char c = s[k - 1] | 0x20;
    int64_t m;
    if (s[k - 1] == '#' || c == 'x') {
        m = k - 1;
    } else if (c == 't' && k - a >= 3 && (s[k - 3] | 0x20) == 'e' && (s[k - 2] | 0x20) == 'x') {
        m = k - 3;
    } else if (s[k - 1] == '.' && k - a >= 4 && (s[k - 4] | 0x20) == 'e' && (s[k - 3] | 0x20) == 'x' && (s[k - 2] | 0x20) == 't') {
        m = k - 4;
    } else {
        return b;
    }
    while (m > a && re2_space(s[m - 1])) m--;
    return m;
}

/* phone_shape(offsets, data, start, n, wide, whitespace, codes) -> bytes of n uint8
 *
 * phones.vec_typed_shape for ASCII values: without a trailing extension, trimmed (the bytes `whitespace` flags),
 * a leading 00 read as +, every character but digits and + dropped: `+` and 8..15 digits (3: accepted, the digits
 * begin with a calling code of `codes`: 10 + 100 + 1000 flags for the 1-, 2- and 3-digit codes; 1: decided, not a
 * phone) or not that shape (0: left to the caller's other checks). 2: a byte above ASCII, not decided here. */
PyObject *native_phone_shape(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    Py_buffer ws, codes;
    if (!PyArg_ParseTuple(args, "OOnnpy*y*", &off_obj, &data_obj, &start, &n, &wide, &ws, &codes)) return NULL;
    PyObject *out = NULL;
    if (ws.len != 256 || codes.len != 1110) {
        PyErr_SetString(PyExc_ValueError, "whitespace must be 256 bytes and codes 1110");
        goto release;
    }
    Column c;
    if (column_open(&c, off_obj, data_obj, start, n, wide) < 0) goto release;
    out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        const unsigned char *trim = (const unsigned char *)ws.buf, *known = (const unsigned char *)codes.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            int high = 0;
            for (int64_t k = a; k < b; k++) high |= src[k] >= 0x80;
            if (high) {
                dst[i] = 2;
                continue;
            }
            b = extension_start(src, a, b);
            while (a < b && trim[src[a]]) a++;
            while (b > a && trim[src[b - 1]]) b--;
            /* The compact form (the + and the digits left) must be one leading + and 8..15 digits; 00 is that +. */
            int lead = 0, digits = 0, shape = 1, code[3] = {0, 0, 0};
            if (b - a >= 2 && src[a] == '0' && src[a + 1] == '0') {
                lead = 1;
                a += 2;
            }
            for (int64_t k = a; k < b && shape; k++) {
                unsigned char ch = src[k];
                if (ch == '+') {
                    shape = !lead; /* a second + */
                    lead = 1;
                } else if (re2_digit(ch)) {
                    shape = lead; /* a digit before the + */
                    if (digits < 3) code[digits] = ch - '0';
                    digits++;
                }
            }
            shape = shape && lead && digits >= 8 && digits <= 15;
            if (!shape) {
                dst[i] = 0;
                continue;
            }
            int ok = known[code[0]] || known[10 + code[0] * 10 + code[1]] || known[110 + code[0] * 100 + code[1] * 10 + code[2]];
            dst[i] = ok ? 3 : 1;
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
release:
    PyBuffer_Release(&ws);
    PyBuffer_Release(&codes);
    return out;
}

/* card_check(offsets, data, start, n, wide, issuers) -> bytes of n uint8
 *
 * validators._vec_card in one pass: a value's digits (every other byte dropped) pass the Luhn check, are not one
 * digit repeated, and begin with an issuer's prefix at one of its lengths. `issuers` holds int64 quadruples
 * (prefix digits, lowest prefix, highest prefix, bit mask of the card lengths), one per prefix range of
 * detect/data/card_issuers.toml. 1: a card number, 0: not. Nulls must be filled with "". */
PyObject *native_card_check(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    Py_buffer table;
    if (column_and_table_from_args(args, &c, &table, -32, "issuers (int64 quadruples)") < 0) return NULL;
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        const int64_t *iss = (const int64_t *)table.buf;
        Py_ssize_t entries = table.len / 32;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            unsigned char digits[64];
            int len = 0;
            for (int64_t k = a; k < b; k++) {
                unsigned char ch = src[k];
                if (ch >= '0' && ch <= '9') {
                    if (len < 64) digits[len] = (unsigned char)(ch - '0');
                    len++;
                }
            }
            int ok = len > 0 && len < 64;
            if (ok) {
                int sum = 0, same = 1;
                for (int j = 0; j < len; j++) {
                    int d = digits[len - 1 - j];
                    if (j & 1) {
                        d *= 2;
                        if (d > 9) d -= 9;
                    }
                    sum += d;
                    same &= digits[j] == digits[0];
                }
                ok = sum % 10 == 0 && !same;
            }
            if (ok) {
                int issued = 0;
                for (Py_ssize_t e = 0; e < entries && !issued; e++) {
                    int64_t plen = iss[4 * e], lo = iss[4 * e + 1], hi = iss[4 * e + 2], lengths = iss[4 * e + 3];
                    if (plen > len || len >= 63 || !((lengths >> len) & 1)) continue;
                    int64_t prefix = 0;
                    for (int j = 0; j < plen; j++) prefix = prefix * 10 + digits[j];
                    issued = prefix >= lo && prefix <= hi;
                }
                ok = issued;
            }
            dst[i] = (unsigned char)ok;
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    PyBuffer_Release(&table);
    return out;
}

/* The whole-value shapes the vectorised validators reject or need (validators.SHAPES), one kind per call:
 *   0  an e-mail address's local part malformed: ".." anywhere, a leading ".", or 65 or more characters (code points)
 *      before the first "@" (RE2: \.\.|^\.|^[^@]{65,}@);
 *   1  a MAC address of one repeated blank: only 0 : . - or only f F : . - (RE2: ^[0:.\-]+$|^[fF:.\-]+$);
 *   2  an IPv6 address's shape: "::" or three hex digits in a row, and not two "::" on one line
 *      (RE2: ::|[0-9A-Fa-f]{3} and not ::.*::). */
static int is_hex(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int shape_of(const unsigned char *s, Py_ssize_t len, int kind) {
    if (kind == 0) {
        if (len > 0 && s[0] == '.') return 1;
        for (Py_ssize_t k = 0; k + 1 < len; k++)
            if (s[k] == '.' && s[k + 1] == '.') return 1;
        Py_ssize_t chars = 0;
        for (Py_ssize_t k = 0; k < len; k++) {
            if (s[k] == '@') return chars >= 65;
            chars += (s[k] & 0xC0) != 0x80; /* a code point starts here */
        }
        return 0;
    }
    if (kind == 1) {
        if (len == 0) return 0;
        int zeros = 1, effs = 1;
        for (Py_ssize_t k = 0; k < len; k++) {
            unsigned char ch = s[k];
            int sep = ch == ':' || ch == '.' || ch == '-';
            zeros &= sep || ch == '0';
            effs &= sep || ch == 'f' || ch == 'F';
        }
        return zeros || effs;
    }
    int shaped = 0, run = 0;
    Py_ssize_t first = -1; /* where the first "::" since the last newline starts */
    for (Py_ssize_t k = 0; k < len; k++) {
        unsigned char ch = s[k];
        run = is_hex(ch) ? run + 1 : 0;
        if (run >= 3) shaped = 1;
        if (ch == '\n') first = -1;
        if (ch == ':' && k + 1 < len && s[k + 1] == ':') {
            shaped = 1;
            if (first < 0)
                first = k;
            else if (first + 2 <= k)
                return 0; /* two "::" on one line */
        }
    }
    return shaped;
}

/* shapes(offsets, data, start, n, wide, kind) -> bytes of n uint8: 1 where the value has the shape `kind` names.
 * Nulls must be filled with "" (which has none of the shapes, as a null had none for RE2). */
PyObject *native_shapes(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    int kind;
    if (column_and_int_from_args(args, &c, &kind) < 0) return NULL;
    if (kind < 0 || kind > 2) {
        column_close(&c);
        PyErr_Format(PyExc_ValueError, "shapes: no shape %d", kind);
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, c.n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < c.n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            dst[i] = (unsigned char)shape_of(src + a, (Py_ssize_t)(b - a), kind);
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    return out;
}

/* whole_linear(offsets, data, start, n, wide, program) -> bytes of n uint8
 *
 * Per value, 1 where a linear pattern (alphabet.linear_program: a sequence of up to 64 positions, each a set of ASCII
 * bytes that may be optional or repeat) matches the whole value, else 0: a bit-parallel run of the pattern's positions
 * (shift-and), a few instructions a byte, left at the first byte no live position takes. `program`: 261 uint64, the
 * position masks of each byte value, then the positions a match may begin at (optional ones skipped), the optional
 * positions, the repeating ones, those a match may end at, and how many optional positions may follow one another. */
#define LINEAR_WORDS 261

/* `steps` bytes of every lane of whole_linear: the lanes' states and places kept in registers (one variable each),
 * the closure over optional positions unrolled for the common counts. */
#define LINEAR_LANES 8
#define LANES(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
static void linear_steps(uint64_t *live, const unsigned char **at, const Py_ssize_t *stride, Py_ssize_t steps,
                         const uint64_t *mask, uint64_t optional, uint64_t repeat, uint64_t skips) {
#define LOAD(l) uint64_t v##l = live[l]; const unsigned char *p##l = at[l]; const Py_ssize_t d##l = stride[l];
#define STORE(l) live[l] = v##l; at[l] = p##l;
#define STEP(l, CLOSE) { uint64_t s_ = v##l << 1; CLOSE(s_); v##l = (s_ | (v##l & repeat)) & mask[*p##l]; p##l += d##l; }
#define NONE(x)
#define ONE(x) x |= (x & optional) << 1;
#define TWO(x) ONE(x) ONE(x)
#define MANY(x) for (uint64_t k_ = 0; k_ < skips; k_++) ONE(x)
#define STEP0(l) STEP(l, NONE)
#define STEP1(l) STEP(l, ONE)
#define STEP2(l) STEP(l, TWO)
#define STEPN(l) STEP(l, MANY)
    LANES(LOAD)
    if (skips == 0) {
        for (Py_ssize_t k = 0; k < steps; k++) { LANES(STEP0) }
    } else if (skips == 1) {
        for (Py_ssize_t k = 0; k < steps; k++) { LANES(STEP1) }
    } else if (skips == 2) {
        for (Py_ssize_t k = 0; k < steps; k++) { LANES(STEP2) }
    } else {
        for (Py_ssize_t k = 0; k < steps; k++) { LANES(STEPN) }
    }
    LANES(STORE)
#undef LOAD
#undef STORE
#undef STEP
#undef NONE
#undef ONE
#undef TWO
#undef MANY
#undef STEP0
#undef STEP1
#undef STEP2
#undef STEPN
}

PyObject *native_whole_linear(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    Py_buffer table;
    if (column_and_table_from_args(args, &c, &table, LINEAR_WORDS * 8, "program") < 0) return NULL;
    uint64_t prog[LINEAR_WORDS];
    memcpy(prog, table.buf, sizeof prog);
    PyBuffer_Release(&table);
    const uint64_t *mask = prog, first = prog[256], optional = prog[257], repeat = prog[258], last = prog[259];
    const uint64_t skips = prog[260];
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        /* LINEAR_LANES values at a time, each in a lane of its own: a byte's step waits on the one before it, so
         * the steps of independent values are interleaved. The lanes step together as many bytes as the shortest
         * value left has; then each lane whose value has ended writes its verdict and takes the next value. */
        static const unsigned char idle[1] = {0};
        const unsigned char *at[LINEAR_LANES];
        Py_ssize_t left[LINEAR_LANES], which[LINEAR_LANES], stride[LINEAR_LANES];
        uint64_t live[LINEAR_LANES];
        Py_ssize_t next_value = 0;
        for (int l = 0; l < LINEAR_LANES; l++) {
            which[l] = -1;
            at[l] = idle;
            left[l] = stride[l] = 0;
            live[l] = 0;
        }
        for (;;) {
            int busy = 0;
            Py_ssize_t steps = PY_SSIZE_T_MAX;
            for (int l = 0; l < LINEAR_LANES; l++) {
                for (;;) { /* until the lane holds a value still undecided, or none is left */
                    if (which[l] >= 0) {
                        if (left[l] != 0 && live[l] != 0) break;
                        dst[which[l]] = left[l] == 0 && (live[l] & last) != 0;
                        which[l] = -1;
                    }
                    if (next_value >= n) break;
                    int64_t a = column_offset(&c, next_value), b = column_offset(&c, next_value + 1);
                    if (a == b) { /* (a linear program never matches the empty value) */
                        dst[next_value++] = 0;
                        continue;
                    }
                    which[l] = next_value++;
                    live[l] = first & mask[src[a]];
                    at[l] = src + a + 1;
                    left[l] = b - a - 1;
                }
                if (which[l] >= 0) {
                    busy = 1;
                    stride[l] = 1;
                    if (left[l] < steps) steps = left[l];
                } else {
                    at[l] = idle;
                    stride[l] = 0;
                }
            }
            if (!busy) break;
            linear_steps(live, at, stride, steps, mask, optional, repeat, skips);
            for (int l = 0; l < LINEAR_LANES; l++) left[l] -= stride[l] * steps;
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    return out;
}
