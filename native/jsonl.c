/* JSON lines to Arrow column buffers in one call per block: the fast path in front of Arrow's JSON reader.
 *
 * Each line of the block holds one object (the caller's line check has set aside every other line). Values
 * go straight into column buffers that Python wraps without copying (sources/records.py `_native_block`):
 * validity and boolean bitmaps, int64 and float64 values, string offsets and bytes, list offsets, struct
 * children. Types are inferred as Arrow's reader infers them: null until a value is seen, int64 promoted to
 * float64 by a number with a fraction or exponent, fields of objects in the order first seen (missing ones
 * null), list elements one column.
 *
 * Only strict, ordinary JSON is taken. Anything this reader does not decide exactly as Arrow's would (a type
 * that changes, a key given twice, an integer beyond int64, NaN, an escape in a key, a bad surrogate, a control
 * character in a string, text after the object) makes it give the block back, and Arrow's reader, with its
 * error handling, reads it as before. Strings that all begin like an ISO 8601 date are given to Arrow too
 * (as a column of their own JSON text): Arrow decides whether they are timestamps.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_FIELDS 1024 /* fields of one object column looked up by a linear search */

enum { K_NULL, K_BOOL, K_INT, K_DOUBLE, K_STRING, K_LIST, K_STRUCT };
static const char *KIND_NAMES[] = {"null", "bool", "int", "double", "string", "list", "struct"};

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap && buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

/* Bit `i` of a bitmap buffer set to `on` (the buffer grows a byte at a time, zeroed). */
static inline int bit_put(Buf *b, int64_t i, int on) {
    size_t byte = (size_t)(i >> 3);
    if (byte >= b->len) {
        if (buf_reserve(b, byte + 1 - b->len) < 0) return -1;
        memset(b->p + b->len, 0, byte + 1 - b->len);
        b->len = byte + 1;
    }
    if (on) b->p[byte] |= (char)(1u << (i & 7));
    return 0;
}

typedef struct Col Col;
struct Col {
    int kind;
    int64_t len, nulls;
    Buf valid;   /* bitmap */
    Buf data;    /* bool: bitmap; int: int64; double: float64; string: bytes */
    Buf offsets; /* string, list: int32, len + 1 of them once the kind is known */
    Col *child;  /* list */
    int nfields, cap_fields, next_field;
    char **names;
    size_t *name_lens;
    Col **fields;
    /* strings: 1 while every value begins like an ISO 8601 date; then `raw` holds each slot's JSON text */
    int dates;
    Buf raw;
};

static Col *col_new(void) { return calloc(1, sizeof(Col)); }

static void col_free(Col *c) {
    if (c == NULL) return;
    free(c->valid.p);
    free(c->data.p);
    free(c->offsets.p);
    free(c->raw.p);
    col_free(c->child);
    for (int i = 0; i < c->nfields; i++) {
        free(c->names[i]);
        col_free(c->fields[i]);
    }
    free(c->names);
    free(c->name_lens);
    free(c->fields);
    free(c);
}

typedef struct {
    const unsigned char *p, *end;
    int failed; /* 1: not for this reader (give the block to Arrow); 2: out of memory */
} Parser;

#define FAIL(ps) \
    do {         \
        (ps)->failed = 1; \
        return -1; \
    } while (0)
#define NOMEM(ps) \
    do {          \
        (ps)->failed = 2; \
        return -1; \
    } while (0)

static void skip_ws(Parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r')) ps->p++;
}

static int32_t off32(size_t v, Parser *ps) {
    if (v > INT32_MAX) ps->failed = 1; /* over 2 GB in one column: Arrow's reader chunks it */
    return (int32_t)v;
}

/* Append a null slot to a column (and, for a struct, to every field). */
static int col_null(Col *c, Parser *ps);

/* The column takes values of `kind` from now on; slots so far are null. Int to double is the one promotion. */
static int col_set_kind(Col *c, int kind, Parser *ps) {
    if (c->kind == kind) return 0;
    if (c->kind == K_INT && kind == K_DOUBLE) {
        int64_t *iv = (int64_t *)c->data.p;
        double *dv = (double *)c->data.p;
        for (int64_t i = 0; i < c->len; i++) dv[i] = (double)iv[i];
        c->kind = K_DOUBLE;
        return 0;
    }
    if (c->kind == K_DOUBLE && kind == K_INT) return 0; /* stored as double */
    if (c->kind != K_NULL) FAIL(ps);
    c->kind = kind;
    if (kind == K_INT || kind == K_DOUBLE) {
        if (buf_reserve(&c->data, (size_t)c->len * 8) < 0) NOMEM(ps);
        memset(c->data.p, 0, (size_t)c->len * 8);
        c->data.len = (size_t)c->len * 8;
    } else if (kind == K_BOOL) {
        if (c->len && bit_put(&c->data, c->len - 1, 0) < 0) NOMEM(ps);
    } else if (kind == K_STRING || kind == K_LIST) {
        int32_t zero = 0;
        for (int64_t i = 0; i <= c->len; i++)
            if (buf_put(&c->offsets, &zero, 4) < 0) NOMEM(ps);
        if (kind == K_LIST && (c->child = col_new()) == NULL) NOMEM(ps);
        if (kind == K_STRING) {
            c->dates = 1;
            for (int64_t i = 0; i < c->len; i++)
                if (buf_put(&c->raw, "{\"v\":null}\n", 11) < 0) NOMEM(ps);
        }
    }
    return 0;
}

static int col_valid(Col *c, int on, Parser *ps) {
    if (!on) c->nulls++;
    if (bit_put(&c->valid, c->len, on) < 0) NOMEM(ps);
    return 0;
}

/* The slot being filled holds a value: mark it valid and move to the next. */
static int col_done(Col *c, Parser *ps) {
    if (col_valid(c, 1, ps) < 0) return -1;
    c->len++;
    return 0;
}

/* After an item of an object or array: 1 at a comma (another item follows), 0 at `close` (consumed), -1 else. */
static int next_item(Parser *ps, unsigned char close) {
    skip_ws(ps);
    if (ps->p < ps->end && (*ps->p == ',' || *ps->p == close)) return *ps->p++ == ',';
    FAIL(ps);
}

static int col_null(Col *c, Parser *ps) {
    if (col_valid(c, 0, ps) < 0) return -1;
    switch (c->kind) {
    case K_BOOL:
        if (bit_put(&c->data, c->len, 0) < 0) NOMEM(ps);
        break;
    case K_INT:
    case K_DOUBLE: {
        int64_t zero = 0;
        if (buf_put(&c->data, &zero, 8) < 0) NOMEM(ps);
        break;
    }
    case K_STRING: {
        int32_t o = off32(c->data.len, ps);
        if (buf_put(&c->offsets, &o, 4) < 0) NOMEM(ps);
        if (c->dates && buf_put(&c->raw, "{\"v\":null}\n", 11) < 0) NOMEM(ps);
        break;
    }
    case K_LIST: {
        int32_t o = off32((size_t)c->child->len, ps);
        if (buf_put(&c->offsets, &o, 4) < 0) NOMEM(ps);
        break;
    }
    case K_STRUCT:
        for (int i = 0; i < c->nfields; i++)
            if (c->fields[i]->len == c->len && col_null(c->fields[i], ps) < 0) return -1;
        break;
    }
    c->len++;
    return 0;
}

static int hex4(const unsigned char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= ch - '0';
        else if (ch >= 'a' && ch <= 'f') v |= ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F') v |= ch - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

#if defined(__SSE2__)
/* Which of sixteen bytes end a run of plain string bytes (a quote, a backslash or a control character), a bit each. */
static inline int special_bytes(__m128i v) {
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), ctrl = _mm_set1_epi8(0x1F);
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                               _mm_cmpeq_epi8(_mm_max_epu8(v, ctrl), ctrl)); /* v <= 0x1F, unsigned */
    return _mm_movemask_epi8(hit);
}
#endif

static inline int plain_byte(unsigned char c) { return c != '"' && c != '\\' && c >= 0x20; }

/* The first byte at or after s that ends a run of plain string bytes. */
static inline const unsigned char *plain_run(const unsigned char *s, const unsigned char *end) {
#if defined(__SSE2__)
    for (; end - s >= 16; s += 16) {
        int mask = special_bytes(_mm_loadu_si128((const __m128i *)s));
        if (mask) return s + __builtin_ctz((unsigned)mask);
    }
#endif
    while (s < end && plain_byte(*s)) s++;
    return s;
}

/* A string token at ps->p (the opening quote), unescaped onto `out`. Plain runs are copied as they are found,
 * sixteen bytes a step (a separate copy per run was a call and a second pass): the output is never longer than
 * the rest of the line (an escape shrinks), so room for that and one step is reserved first. */
static int parse_string(Parser *ps, Buf *out) {
    const unsigned char *s = ps->p + 1, *end = ps->end;
    if (buf_reserve(out, (size_t)(end - s) + 16) < 0) NOMEM(ps);
    unsigned char *d = (unsigned char *)out->p + out->len;
    for (;;) {
#if defined(__SSE2__)
        for (; end - s >= 16; s += 16, d += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)s);
            _mm_storeu_si128((__m128i *)d, v);
            int mask = special_bytes(v);
            if (mask) {
                int k = __builtin_ctz((unsigned)mask);
                s += k;
                d += k;
                break;
            }
        }
#endif
        while (s < end && plain_byte(*s)) *d++ = *s++; /* the tail (after a step's special byte: nothing) */
        if (s >= end || *s < 0x20) FAIL(ps); /* unterminated, or a raw control character */
        if (*s == '"') {
            out->len = (size_t)((char *)d - out->p);
            ps->p = s + 1;
            return 0;
        }
        if (s + 1 >= end) FAIL(ps);
        unsigned char e = s[1];
        switch (e) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (s + 6 > end || hex4(s + 2, &cp) < 0) FAIL(ps);
            s += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs its low half */
                unsigned lo;
                if (s + 6 > end || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) FAIL(ps);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                FAIL(ps);
            }
            if (cp < 0x80) {
                *d++ = (unsigned char)cp;
            } else if (cp < 0x800) {
                *d++ = (unsigned char)(0xC0 | (cp >> 6));
                *d++ = (unsigned char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *d++ = (unsigned char)(0xE0 | (cp >> 12));
                *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                *d++ = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                *d++ = (unsigned char)(0xF0 | (cp >> 18));
                *d++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                *d++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                *d++ = (unsigned char)(0x80 | (cp & 0x3F));
            }
            continue;
        }
        default:
            FAIL(ps);
        }
        s += 2;
    }
}

static int looks_like_date(const unsigned char *v, size_t n) {
    static const char shape[] = "dddd-dd-dd";
    if (n < 10) return 0;
    for (int i = 0; i < 10; i++) {
        if (shape[i] == 'd' ? (v[i] < '0' || v[i] > '9') : v[i] != '-') return 0;
    }
    return 1;
}

static int parse_value(Parser *ps, Col *c, int depth);

/* The powers of ten a double holds exactly. */
static const double EXACT_POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number (already checked) as the double strtod gives, without strtod, where that is exact: its digits
 * make an integer m below 2^53 and it is m times or divided by 10^k with k <= 22. Both are then exact doubles and
 * the one multiplication or division rounds once, correctly (Clinger's fast path), as strtod does. 1 (and errno
 * 0, which the caller tests as after strtod) when it is such a number, else 0. */
static int exact_decimal(const char *s, size_t n, double *out) {
    size_t k = 0;
    int negative = s[0] == '-';
    if (negative) k++;
    uint64_t m = 0;
    int digits = 0, frac = 0, in_frac = 0;
    for (; k < n; k++) {
        char ch = s[k];
        if (ch >= '0' && ch <= '9') {
            if (++digits > 19) return 0;
            m = m * 10 + (uint64_t)(ch - '0');
            frac += in_frac;
        } else if (ch == '.') {
            in_frac = 1;
        } else {
            break; /* an exponent */
        }
    }
    int e10 = -frac;
    if (k < n) { /* e or E, a sign, digits */
        k++;
        int eneg = 0, ev = 0;
        if (s[k] == '+' || s[k] == '-') eneg = s[k++] == '-';
        for (; k < n; k++) {
            if (ev > 1000) return 0;
            ev = ev * 10 + (s[k] - '0');
        }
        e10 += eneg ? -ev : ev;
    }
    if (m > ((uint64_t)1 << 53) || e10 < -22 || e10 > 22) return 0;
    double d = (double)m;
    d = e10 < 0 ? d / EXACT_POW10[-e10] : d * EXACT_POW10[e10];
    *out = negative ? -d : d;
    errno = 0;
    return 1;
}

static int parse_number(Parser *ps, Col *c) {
    const unsigned char *s = ps->p, *q = s;
    int is_double = 0;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end) FAIL(ps);
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    } else {
        FAIL(ps);
    }
    if (q < ps->end && *q == '.') {
        is_double = 1;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') FAIL(ps);
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        is_double = 1;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') FAIL(ps);
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - s);
    char tmp[64];
    if (n >= sizeof tmp) FAIL(ps); /* long numbers: Arrow's own parsing decides */
    memcpy(tmp, s, n);
    tmp[n] = 0;
    ps->p = q;
    if (!is_double && c->kind != K_DOUBLE) {
        int64_t iv;
        int negative = tmp[0] == '-';
        if (n - (size_t)negative <= 18) { /* cannot overflow */
            iv = 0;
            for (size_t k = (size_t)negative; k < n; k++) iv = iv * 10 + (tmp[k] - '0');
            if (negative) iv = -iv;
        } else {
            errno = 0;
            long long v = strtoll(tmp, NULL, 10);
            if (errno == ERANGE) FAIL(ps); /* beyond int64: Arrow makes the column double */
            iv = (int64_t)v;
        }
        if (col_set_kind(c, K_INT, ps) < 0) return -1;
        if (buf_put(&c->data, &iv, 8) < 0) NOMEM(ps);
    } else {
        double d;
        if (!exact_decimal(tmp, n, &d)) {
            errno = 0;
            d = strtod(tmp, NULL);
        }
        if (!isfinite(d) || errno == ERANGE) FAIL(ps); /* beyond float64's range either way: Arrow's reader */
        if (col_set_kind(c, K_DOUBLE, ps) < 0) return -1;
        if (buf_put(&c->data, &d, 8) < 0) NOMEM(ps);
    }
    return col_done(c, ps);
}

/* memcmp(a, b, n) == 0 for the short names of fields, inline (a call per field was 7 % of reading). */
static inline int same_name(const char *a, const unsigned char *b, size_t n) {
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n; a++, b++, n--)
        if ((unsigned char)*a != *b) return 0;
    return 1;
}

static int field_of(Parser *ps, Col *c, const unsigned char *name, size_t n) {
    /* fields mostly come in the same order in every object: try the one after the last first */
    int start = c->next_field;
    for (int k = 0; k < c->nfields; k++) {
        int i = (start + k) % c->nfields;
        if (c->name_lens[i] == n && same_name(c->names[i], name, n)) {
            c->next_field = (i + 1) % c->nfields;
            return i;
        }
    }
    if (c->nfields >= MAX_FIELDS) FAIL(ps); /* very wide objects (keys that are ids): Arrow's reader hashes names */
    if (c->nfields == c->cap_fields) {
        int cap = c->cap_fields ? c->cap_fields * 2 : 8;
        char **names = realloc(c->names, (size_t)cap * sizeof(char *));
        if (names == NULL) NOMEM(ps);
        c->names = names;
        size_t *lens = realloc(c->name_lens, (size_t)cap * sizeof(size_t));
        if (lens == NULL) NOMEM(ps);
        c->name_lens = lens;
        Col **fields = realloc(c->fields, (size_t)cap * sizeof(Col *));
        if (fields == NULL) NOMEM(ps);
        c->fields = fields;
        c->cap_fields = cap;
    }
    char *copy = malloc(n + 1);
    Col *f = col_new();
    if (copy == NULL || f == NULL) {
        free(copy);
        free(f);
        NOMEM(ps);
    }
    memcpy(copy, name, n);
    copy[n] = 0;
    int i = c->nfields++;
    c->names[i] = copy;
    c->name_lens[i] = n;
    c->fields[i] = f;
    for (int64_t k = 0; k < c->len; k++) /* a field first seen now was null in the objects before */
        if (col_null(f, ps) < 0) return -1;
    c->next_field = (i + 1) % c->nfields;
    return i;
}

static int parse_object(Parser *ps, Col *c, int depth) {
    if (col_set_kind(c, K_STRUCT, ps) < 0) return -1;
    int64_t slot = c->len;
    ps->p++; /* { */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') FAIL(ps);
            const unsigned char *name = ps->p + 1, *q = plain_run(name, ps->end);
            if (q >= ps->end || *q != '"') FAIL(ps); /* a key with an escape: Arrow's reader */
            int i = field_of(ps, c, name, (size_t)(q - name));
            if (i < 0) return -1;
            Col *f = c->fields[i];
            if (f->len != slot) FAIL(ps); /* the key was given twice */
            ps->p = q + 1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') FAIL(ps);
            ps->p++;
            skip_ws(ps);
            if (parse_value(ps, f, depth + 1) < 0) return -1;
            int more = next_item(ps, '}');
            if (more < 0) return -1;
            if (!more) break;
        }
    }
    for (int i = 0; i < c->nfields; i++)
        if (c->fields[i]->len == slot && col_null(c->fields[i], ps) < 0) return -1;
    return col_done(c, ps);
}

static int parse_value(Parser *ps, Col *c, int depth) {
    if (depth > 64 || ps->p >= ps->end) FAIL(ps);
    unsigned char ch = *ps->p;
    if (ch == '{') return parse_object(ps, c, depth);
    if (ch == '[') {
        if (col_set_kind(c, K_LIST, ps) < 0) return -1;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
        } else {
            for (;;) {
                skip_ws(ps);
                if (parse_value(ps, c->child, depth + 1) < 0) return -1;
                int more = next_item(ps, ']');
                if (more < 0) return -1;
                if (!more) break;
            }
        }
        int32_t o = off32((size_t)c->child->len, ps);
        if (buf_put(&c->offsets, &o, 4) < 0) NOMEM(ps);
        return col_done(c, ps);
    }
    if (ch == '"') {
        if (col_set_kind(c, K_STRING, ps) < 0) return -1;
        const unsigned char *token = ps->p;
        size_t before = c->data.len;
        if (parse_string(ps, &c->data) < 0) return -1;
        if (c->dates) {
            if (looks_like_date((const unsigned char *)c->data.p + before, c->data.len - before)) {
                if (buf_put(&c->raw, "{\"v\":", 5) < 0 || buf_put(&c->raw, token, (size_t)(ps->p - token)) < 0 ||
                    buf_put(&c->raw, "}\n", 2) < 0)
                    NOMEM(ps);
            } else { /* not every value is a date: the column is text, as Arrow would conclude */
                c->dates = 0;
                free(c->raw.p);
                memset(&c->raw, 0, sizeof c->raw);
            }
        }
        int32_t o = off32(c->data.len, ps);
        if (buf_put(&c->offsets, &o, 4) < 0) NOMEM(ps);
        return col_done(c, ps);
    }
    if (ch == 't' || ch == 'f') {
        int on = ch == 't';
        size_t n = on ? 4 : 5;
        if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, on ? "true" : "false", n) != 0) FAIL(ps);
        ps->p += n;
        if (col_set_kind(c, K_BOOL, ps) < 0) return -1;
        if (bit_put(&c->data, c->len, on) < 0) NOMEM(ps);
        return col_done(c, ps);
    }
    if (ch == 'n') {
        if ((size_t)(ps->end - ps->p) < 4 || memcmp(ps->p, "null", 4) != 0) FAIL(ps);
        ps->p += 4;
        return col_null(c, ps);
    }
    return parse_number(ps, c);
}

/* A buffer the columns own, handed to Python without a copy: Arrow wraps it (pa.py_buffer) and frees it with the
 * last array that uses it. */
typedef struct {
    PyObject_HEAD
    char *p;
    Py_ssize_t len;
} OwnedBuffer;

static int OwnedBuffer_getbuffer(OwnedBuffer *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p ? self->p : (char *)"", self->len, 1, flags);
}

static void OwnedBuffer_dealloc(OwnedBuffer *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs OwnedBuffer_as_buffer = {(getbufferproc)OwnedBuffer_getbuffer, NULL};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "spillguard._native.OwnedBuffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_dealloc = (destructor)OwnedBuffer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Column bytes made by the native JSON-lines reader (buffer protocol, read-only).",
    .tp_as_buffer = &OwnedBuffer_as_buffer,
};

int jsonl_ready(void) { return PyType_Ready(&OwnedBufferType); }

/* The buffer's bytes as an OwnedBuffer; the column no longer holds them. */
static PyObject *bytes_of(Buf *b) {
    OwnedBuffer *o = PyObject_New(OwnedBuffer, &OwnedBufferType);
    if (o == NULL) return NULL;
    o->p = b->p;
    o->len = (Py_ssize_t)b->len;
    memset(b, 0, sizeof *b);
    return (PyObject *)o;
}

/* (kind, length, null count, validity or None, ...): see records.py `_native_array` */
static PyObject *describe(Col *c) {
    PyObject *valid = c->nulls ? bytes_of(&c->valid) : Py_NewRef(Py_None);
    if (valid == NULL) return NULL;
    PyObject *extra = NULL;
    switch (c->kind) {
    case K_NULL:
        extra = PyTuple_New(0);
        break;
    case K_BOOL:
    case K_INT:
    case K_DOUBLE:
        extra = Py_BuildValue("(N)", bytes_of(&c->data));
        break;
    case K_STRING:
        extra = Py_BuildValue("(NNN)", bytes_of(&c->offsets), bytes_of(&c->data),
                              c->dates && c->len > c->nulls ? bytes_of(&c->raw) : Py_NewRef(Py_None));
        break;
    case K_LIST:
        extra = Py_BuildValue("(NN)", bytes_of(&c->offsets), describe(c->child));
        break;
    case K_STRUCT: {
        PyObject *fields = PyList_New(c->nfields);
        if (fields == NULL) break;
        for (int i = 0; i < c->nfields; i++) {
            PyObject *item = Py_BuildValue("(s#N)", c->names[i], (Py_ssize_t)c->name_lens[i], describe(c->fields[i]));
            if (item == NULL) {
                Py_DECREF(fields);
                fields = NULL;
                break;
            }
            PyList_SET_ITEM(fields, i, item);
        }
        if (fields != NULL) extra = Py_BuildValue("(N)", fields);
        break;
    }
    }
    if (extra == NULL) {
        Py_DECREF(valid);
        return NULL;
    }
    PyObject *head = Py_BuildValue("(sLLN)", KIND_NAMES[c->kind], (long long)c->len, (long long)c->nulls, valid);
    if (head == NULL) {
        Py_DECREF(extra);
        return NULL;
    }
    PyObject *out = PySequence_Concat(head, extra);
    Py_DECREF(head);
    Py_DECREF(extra);
    return out;
}

/* json_lines_columns(data) -> the rows' struct column described as nested tuples, or None: Arrow's reader decides */
PyObject *native_json_lines_columns(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    Col *rows = col_new();
    if (rows == NULL) {
        PyBuffer_Release(&buf);
        return PyErr_NoMemory();
    }
    Parser ps = {(const unsigned char *)buf.buf, (const unsigned char *)buf.buf + buf.len, 0};
    const unsigned char *end = ps.end;
    Py_BEGIN_ALLOW_THREADS
    rows->kind = K_STRUCT;
    while (ps.p < end && !ps.failed) {
        const unsigned char *nl = memchr(ps.p, '\n', (size_t)(end - ps.p));
        const unsigned char *line_end = nl ? nl : end;
        ps.end = line_end;
        skip_ws(&ps);
        if (ps.p < line_end) { /* a blank line (or a lone CR) is no row */
            if (*ps.p != '{' || parse_object(&ps, rows, 1) < 0) {
                if (!ps.failed) ps.failed = 1;
                break;
            }
            skip_ws(&ps);
            if (ps.p != line_end) { /* a second value after the object: Arrow's reader reports it */
                ps.failed = 1;
                break;
            }
        }
        ps.p = nl ? nl + 1 : end;
        ps.end = end;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyObject *result;
    if (ps.failed == 2)
        result = PyErr_NoMemory();
    else if (ps.failed)
        result = Py_NewRef(Py_None);
    else
        result = describe(rows);
    col_free(rows);
    return result;
}
