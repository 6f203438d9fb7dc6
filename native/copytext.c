/* PostgreSQL's COPY TEXT format (tab between fields, one row per line, `\N` for null, backslash escapes) decoded
 * into Arrow string columns in one call per block: for every column its offsets, data and validity buffers, ready
 * for pa.Array.from_buffers without a copy. No Python runs per row or per value.
 *
 * Two passes over the block: the first finds every field, sixteen bytes a step (a backslash always escapes the
 * byte after it, so an escaped tab or newline never ends a field), records where each ends and whether it holds a
 * backslash, checks that each row has `ncols` fields, and sums each column's field lengths (an upper bound of its
 * decoded length) and nulls; the second fills each column in turn from the recorded fields, copying plain ones
 * whole and decoding the escapes of the others into buffers of that size. Escapes as COPY FROM reads them:
 * \b \f \n \r \t \v, \ooo (1 to 3 octal digits), \xhh (1 or 2 hex digits), any other byte stands for itself; a field
 * that is exactly `\N` is null.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    int64_t raw;   /* sum of the column's raw field lengths: its decoded data never exceeds this */
    int64_t nulls;
    PyObject *off, *data, *valid;
    int wide;
} Out;

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode one raw field [p, e) into dst; returns the decoded length. */
static int64_t decode_field(const unsigned char *p, const unsigned char *e, unsigned char *dst) {
    unsigned char *d = dst;
    while (p < e) {
        const unsigned char *bs = memchr(p, '\\', (size_t)(e - p));
        if (bs == NULL) {
            memcpy(d, p, (size_t)(e - p));
            d += e - p;
            break;
        }
        memcpy(d, p, (size_t)(bs - p));
        d += bs - p;
        p = bs + 1; /* the first pass made sure a byte follows every backslash */
        unsigned char c = *p++;
        switch (c) {
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'v': *d++ = '\v'; break;
        case 'x': {
            int h = p < e ? hexval(*p) : -1;
            if (h < 0) {
                *d++ = 'x';
                break;
            }
            int v = h;
            p++;
            if (p < e && (h = hexval(*p)) >= 0) {
                v = v * 16 + h;
                p++;
            }
            *d++ = (unsigned char)v;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0';
                for (int k = 0; k < 2 && p < e && *p >= '0' && *p <= '7'; k++) v = v * 8 + (*p++ - '0');
                *d++ = (unsigned char)(v & 0xff);
            } else {
                *d++ = c;
            }
        }
    }
    return d - dst;
}

/* The first tab, newline or backslash at or after p (end when none): sixteen bytes a step where SSE2 is there. */
static inline const unsigned char *next_special(const unsigned char *p, const unsigned char *end) {
#if defined(__SSE2__)
    const __m128i tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n'), bs = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        int mask = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, nl)), _mm_cmpeq_epi8(v, bs)));
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && *p != '\t' && *p != '\n' && *p != '\\') p++;
    return p;
}

/* [f, q) to dst, whose buffer has COPY_SLACK bytes to spare past the column's data: a short field (most are) as
 * one or two 16-byte moves instead of a call, when the block has 32 bytes from f. */
#define COPY_SLACK 32
static inline void copy_field(unsigned char *dst, const unsigned char *f, const unsigned char *q, const unsigned char *end) {
#if defined(__SSE2__)
    if (q - f <= 32 && end - f >= 32) {
        _mm_storeu_si128((__m128i *)dst, _mm_loadu_si128((const __m128i *)f));
        if (q - f > 16) _mm_storeu_si128((__m128i *)(dst + 16), _mm_loadu_si128((const __m128i *)(f + 16)));
        return;
    }
#endif
    memcpy(dst, f, (size_t)(q - f));
}

#define ESCAPED ((int64_t)1 << 62) /* set on a recorded field end whose field holds a backslash */

/* copy_text_columns(block, ncols, first_row=1) -> (rows, [(offsets, data, validity or None, nulls, wide), ...]);
 * ValueError naming the row (counted from first_row) when the block is not COPY text of ncols columns. */
PyObject *native_copy_text_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *block_obj;
    Py_ssize_t ncols, first_row = 1;
    if (!PyArg_ParseTuple(args, "On|n", &block_obj, &ncols, &first_row)) return NULL;
    if (ncols < 1) {
        PyErr_SetString(PyExc_ValueError, "a COPY row has at least one column");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(block_obj, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *buf = (const unsigned char *)view.buf, *end = buf + view.len;
    PyObject *result = NULL, *columns = NULL;
    int64_t *ends = NULL; /* each field's end (its tab or newline), row by row; ESCAPED marks a backslash in it */
    Out *out = calloc((size_t)ncols, sizeof(Out));
    if (out == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* pass 1: every field's end, rows, field counts, per-column raw lengths and nulls */
    Py_ssize_t rows = 0, bad_row = -1, bad_fields = 0;
    int unended = 0, oom = 0;
    /* room for rows of ~256 bytes, never more fields than the block has bytes (a wide table's rows are longer) */
    size_t cap = (size_t)ncols * (size_t)(view.len / 256 + 16);
    if (cap > (size_t)view.len + 2 * (size_t)ncols) cap = (size_t)view.len + 2 * (size_t)ncols;
    ends = malloc(cap * sizeof(int64_t));
    if (ends == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = buf, *field = buf;
    Py_ssize_t col = 0;
    int64_t escaped = 0;
    for (;;) {
        p = next_special(p, end);
        if (p >= end) break;
        if (*p == '\\') {
            p += 2; /* an escaped tab or newline is data */
            escaped = ESCAPED;
            if (p > end) break;
            continue;
        }
        if (col < ncols) {
            out[col].raw += p - field;
            if (p - field == 2 && field[0] == '\\' && field[1] == 'N') out[col].nulls++;
            ends[(size_t)rows * (size_t)ncols + (size_t)col] = (int64_t)(p - buf) | escaped;
        }
        escaped = 0;
        col++;
        if (*p == '\n') {
            if (col != ncols) {
                bad_row = rows;
                bad_fields = col;
                break;
            }
            rows++;
            col = 0;
            if ((size_t)(rows + 1) * (size_t)ncols > cap) {
                cap *= 2;
                int64_t *grown = realloc(ends, cap * sizeof(int64_t));
                if (grown == NULL) {
                    oom = 1;
                    break;
                }
                ends = grown;
            }
        }
        field = ++p;
    }
    unended = bad_row < 0 && !oom && field < end; /* no newline after the last row, or a backslash escaped it */
    Py_END_ALLOW_THREADS
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (unended) {
        PyErr_Format(PyExc_ValueError, "row %zd is not ended by a newline", first_row + rows);
        goto done;
    }
    if (bad_row >= 0) {
        PyErr_Format(PyExc_ValueError, "row %zd has %zd fields, expected %zd", first_row + bad_row, bad_fields, ncols);
        goto done;
    }

    /* buffers */
    for (Py_ssize_t i = 0; i < ncols; i++) {
        Out *o = &out[i];
        o->wide = o->raw > INT32_MAX;
        o->off = PyBytes_FromStringAndSize(NULL, (rows + 1) * (o->wide ? 8 : 4));
        o->data = PyBytes_FromStringAndSize(NULL, o->raw + COPY_SLACK);
        if (o->off == NULL || o->data == NULL) goto done;
        if (o->nulls) {
            o->valid = PyBytes_FromStringAndSize(NULL, (rows + 7) / 8);
            if (o->valid == NULL) goto done;
            memset(PyBytes_AS_STRING(o->valid), 0, (size_t)(rows + 7) / 8);
        }
    }

    /* pass 2: each column's values copied (or their escapes decoded) from the recorded fields */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < ncols; i++) {
        Out *o = &out[i];
        unsigned char *data = (unsigned char *)PyBytes_AS_STRING(o->data);
        unsigned char *bits = o->valid ? (unsigned char *)PyBytes_AS_STRING(o->valid) : NULL;
        int32_t *off32 = (int32_t *)PyBytes_AS_STRING(o->off);
        int64_t *off64 = (int64_t *)PyBytes_AS_STRING(o->off);
        int64_t len = 0;
        if (o->wide) off64[0] = 0;
        else off32[0] = 0;
        for (Py_ssize_t r = 0; r < rows; r++) {
            const int64_t *at = ends + (size_t)r * (size_t)ncols + (size_t)i; /* the field before ends just before */
            const unsigned char *f = r || i ? buf + (at[-1] & (ESCAPED - 1)) + 1 : buf;
            const unsigned char *q = buf + (*at & (ESCAPED - 1));
            if (q - f == 2 && f[0] == '\\' && f[1] == 'N') {
                /* null: an empty value, its validity bit stays 0 */
            } else {
                if (*at & ESCAPED) len += decode_field(f, q, data + len);
                else {
                    copy_field(data + len, f, q, end);
                    len += q - f;
                }
                if (bits) bits[r >> 3] |= (unsigned char)(1u << (r & 7));
            }
            if (o->wide) off64[r + 1] = len;
            else off32[r + 1] = (int32_t)len;
        }
        o->raw = len;
    }
    Py_END_ALLOW_THREADS

    columns = PyList_New(ncols);
    if (columns == NULL) goto done;
    for (Py_ssize_t i = 0; i < ncols; i++) {
        Out *o = &out[i];
        if (_PyBytes_Resize(&o->data, o->raw) < 0) goto done;
        PyObject *t = Py_BuildValue("(OOOnO)", o->off, o->data, o->valid ? o->valid : Py_None, (Py_ssize_t)o->nulls,
                                    o->wide ? Py_True : Py_False);
        if (t == NULL) goto done;
        PyList_SET_ITEM(columns, i, t);
    }
    result = Py_BuildValue("(nO)", rows, columns);
done:
    free(ends);
    if (out != NULL) {
        for (Py_ssize_t i = 0; i < ncols; i++) {
            Py_XDECREF(out[i].off);
            Py_XDECREF(out[i].data);
            Py_XDECREF(out[i].valid);
        }
        free(out);
    }
    Py_XDECREF(columns);
    PyBuffer_Release(&view);
    return result;
}

/* ---- reading a COPY TO STDOUT from libpq, rows appended natively ------------------------------------------------
 * psycopg hands COPY output on one row per Python call. copy_out_read drains every row libpq can give without
 * waiting (PQgetCopyData in async mode, PQconsumeInput when its buffer is empty) into the caller's block, with the
 * GIL released; the caller waits for the socket itself (interruptible) and calls again. The connection is
 * psycopg's: its PGconn pointer, used through the libpq psycopg loaded (found by path, never loaded here). */
#include <dlfcn.h>

typedef int (*get_copy_data_fn)(void *, char **, int);
typedef void (*freemem_fn)(void *);
typedef int (*consume_input_fn)(void *);
typedef int (*socket_fn)(const void *);

static struct {
    char path[4096];
    get_copy_data_fn get_copy_data;
    freemem_fn freemem;
    consume_input_fn consume_input;
    socket_fn socket;
} libpq;

static int libpq_open(const char *path) {
    if (libpq.get_copy_data != NULL && strcmp(libpq.path, path) == 0) return 0;
    if (strlen(path) >= sizeof(libpq.path)) {
        PyErr_SetString(PyExc_ValueError, "libpq path too long");
        return -1;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD); /* only the library already loaded: psycopg's own */
    if (h == NULL) {
        PyErr_Format(PyExc_OSError, "libpq %s is not loaded", path);
        return -1;
    }
    get_copy_data_fn g = (get_copy_data_fn)dlsym(h, "PQgetCopyData");
    freemem_fn f = (freemem_fn)dlsym(h, "PQfreemem");
    consume_input_fn c = (consume_input_fn)dlsym(h, "PQconsumeInput");
    socket_fn s = (socket_fn)dlsym(h, "PQsocket");
    dlclose(h); /* RTLD_NOLOAD took a reference; psycopg keeps the library loaded */
    if (g == NULL || f == NULL || c == NULL || s == NULL) {
        PyErr_Format(PyExc_OSError, "%s lacks the COPY functions", path);
        return -1;
    }
    strcpy(libpq.path, path);
    libpq.get_copy_data = g;
    libpq.freemem = f;
    libpq.consume_input = c;
    libpq.socket = s;
    return 0;
}

enum { COPY_WAIT = 0, COPY_MORE = 1, COPY_END = 2, COPY_ERROR = 3 };

/* copy_out_read(libpq_path, pgconn, fd, block, max_bytes) -> status: appends the rows libpq has to the bytearray
 * `block` (read straight into it: no copy per call, none to join the calls' rows) until it holds max_bytes or more.
 * Status 0 = nothing more until the socket is readable, 1 = max_bytes reached, 2 = the COPY ended (fetch its
 * result), 3 = libpq reported an error. While the GIL is released the bytearray is sized to max_bytes (the rows
 * written so far, then room): a row that does not fit waits in a side buffer, appended once the GIL is back. */
PyObject *native_copy_out_read(PyObject *self, PyObject *args) {
    (void)self;
    const char *path;
    unsigned long long ptr;
    int fd;
    PyObject *block;
    Py_ssize_t max_bytes;
    if (!PyArg_ParseTuple(args, "sKiO!n", &path, &ptr, &fd, &PyByteArray_Type, &block, &max_bytes)) return NULL;
    if (libpq_open(path) < 0) return NULL;
    void *conn = (void *)(uintptr_t)ptr;
    if (conn == NULL || libpq.socket(conn) != fd) {
        PyErr_SetString(PyExc_ValueError, "the connection is not the one libpq knows");
        return NULL;
    }
    Py_ssize_t start = PyByteArray_GET_SIZE(block);
    if (start >= max_bytes) return PyLong_FromLong(COPY_MORE);
    if (PyByteArray_Resize(block, max_bytes) < 0) return NULL; /* fails while the block's buffer is exported */
    char *base = PyByteArray_AS_STRING(block);
    size_t room = (size_t)(max_bytes - start), len = 0; /* bytes written at base + start */
    char *extra = NULL;                                  /* rows past the room, in order after them */
    size_t extra_len = 0, extra_cap = 0;
    int status = COPY_ERROR, oom = 0;
    Py_BEGIN_ALLOW_THREADS
    int fresh = 0; /* rows read since the last PQconsumeInput */
    int consumed = 0;
    for (;;) {
        if (len + extra_len >= room) {
            status = COPY_MORE;
            break;
        }
        char *row = NULL;
        int n = libpq.get_copy_data(conn, &row, 1);
        if (n > 0) {
            if (extra_len == 0 && len + (size_t)n <= room) {
                memcpy(base + start + len, row, (size_t)n);
                len += (size_t)n;
            } else {
                if (extra_len + (size_t)n > extra_cap) {
                    size_t cap = extra_cap ? extra_cap : 1 << 16;
                    while (extra_len + (size_t)n > cap) cap *= 2;
                    char *grown = realloc(extra, cap);
                    if (grown == NULL) {
                        libpq.freemem(row);
                        oom = 1;
                        break;
                    }
                    extra = grown;
                    extra_cap = cap;
                }
                memcpy(extra + extra_len, row, (size_t)n);
                extra_len += (size_t)n;
            }
            libpq.freemem(row);
            fresh++;
            continue;
        }
        if (n == 0) {
            if (consumed && fresh == 0) {
                status = COPY_WAIT;
                break;
            }
            if (!libpq.consume_input(conn)) {
                status = COPY_ERROR;
                break;
            }
            consumed = 1;
            fresh = 0;
            continue;
        }
        status = n == -1 ? COPY_END : COPY_ERROR;
        break;
    }
    Py_END_ALLOW_THREADS
    /* The rows read are the block's now (libpq has handed them over): kept even when the side buffer failed. Within
     * the room the size is set, not resized: PyByteArray_Resize would give back the unused room (a shrink by half
     * reallocates) and the next call would ask for it again, twice per call for the first half of every block. */
    Py_ssize_t total = start + (Py_ssize_t)(len + extra_len);
    int resized = 0;
    if (extra_len == 0) {
        Py_SET_SIZE(block, total);
        PyByteArray_AS_STRING(block)[total] = '\0';
    } else {
        resized = PyByteArray_Resize(block, total);
        if (resized == 0) memcpy(PyByteArray_AS_STRING(block) + start + len, extra, extra_len);
    }
    free(extra);
    if (oom) return PyErr_NoMemory();
    if (resized < 0) return NULL;
    return PyLong_FromLong(status);
}

/* json_object_lines(prefixes, columns, rows) -> bytes: one JSON line per row, an object whose members are the
 * columns' values: each column's prefix (bytes carrying the brace or comma and the quoted member name, '{"a":'
 * then ',"b":'), its value as written (JSON text) or null where the validity bitmap says so, and "}\n" after the
 * last. `columns`: (offsets, data, start, n, wide, validity or None) each, n == rows. The jsonb columns of a COPY
 * block become the lines Arrow's JSON reader parses, in one pass instead of Arrow's element-wise join. */
PyObject *native_json_object_lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *prefixes, *columns;
    Py_ssize_t rows;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyList_Type, &prefixes, &PyList_Type, &columns, &rows)) return NULL;
    Py_ssize_t k = PyList_GET_SIZE(columns);
    if (k == 0 || k != PyList_GET_SIZE(prefixes) || rows < 0) {
        PyErr_SetString(PyExc_ValueError, "one prefix per column, at least one column");
        return NULL;
    }
    Column *cols = calloc((size_t)k, sizeof(Column));
    Py_buffer *valid = calloc((size_t)k, sizeof(Py_buffer));
    char *has_valid = calloc((size_t)k, 1);
    PyObject *out = NULL;
    Py_ssize_t opened = 0;
    if (cols == NULL || valid == NULL || has_valid == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t total = (size_t)rows * 2; /* "}\n" */
    for (; opened < k; opened++) {
        PyObject *item = PyList_GET_ITEM(columns, opened), *pre = PyList_GET_ITEM(prefixes, opened);
        PyObject *off_obj, *data_obj, *valid_obj;
        Py_ssize_t start, n;
        int wide;
        if (!PyBytes_Check(pre)) {
            PyErr_SetString(PyExc_TypeError, "prefixes must be bytes");
            goto done;
        }
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OOnnpO", &off_obj, &data_obj, &start, &n, &wide, &valid_obj)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "columns must be tuples");
            goto done;
        }
        if (n != rows) {
            PyErr_SetString(PyExc_ValueError, "every column must have one value per row");
            goto done;
        }
        if (column_open(&cols[opened], off_obj, data_obj, start, n, wide) < 0) goto done;
        if (valid_obj != Py_None) {
            if (PyObject_GetBuffer(valid_obj, &valid[opened], PyBUF_SIMPLE) < 0) {
                column_close(&cols[opened]);
                goto done;
            }
            has_valid[opened] = 1;
            if (valid[opened].len * 8 < start + n) {
                PyErr_SetString(PyExc_ValueError, "validity bitmap shorter than the array");
                opened++;
                goto done;
            }
        }
        total += (size_t)(column_offset(&cols[opened], n) - column_offset(&cols[opened], 0));
        total += (size_t)rows * ((size_t)PyBytes_GET_SIZE(pre) + 4); /* prefix, and "null" at most */
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out == NULL) goto done;
    char *dst = PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        for (Py_ssize_t i = 0; i < k; i++) {
            const Column *c = &cols[i];
            PyObject *pre = PyList_GET_ITEM(prefixes, i); /* a list item's pointer: read only, no reference taken */
            Py_ssize_t plen = PyBytes_GET_SIZE(pre);
            memcpy(dst, PyBytes_AS_STRING(pre), (size_t)plen);
            dst += plen;
            Py_ssize_t bit = c->start + r;
            if (has_valid[i] && !((((const unsigned char *)valid[i].buf)[bit >> 3] >> (bit & 7)) & 1)) {
                memcpy(dst, "null", 4);
                dst += 4;
                continue;
            }
            int64_t a = column_offset(c, r), b = column_offset(c, r + 1);
            if (b > a) memcpy(dst, (const char *)c->data.buf + a, (size_t)(b - a));
            dst += b - a;
        }
        *dst++ = '}';
        *dst++ = '\n';
    }
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&out, dst - PyBytes_AS_STRING(out)) < 0) out = NULL;
done:
    for (Py_ssize_t i = 0; i < opened; i++) {
        column_close(&cols[i]);
        if (has_valid[i]) PyBuffer_Release(&valid[i]);
    }
    free(cols);
    free(valid);
    free(has_valid);
    return out;
}
