/* One pass over a block of JSON lines before Arrow's reader gets it (sources/records.py `_scan_lines`).
 *
 * A line is suspect when it is not an object (`null` as a first line crashes the reader) or its brackets nest
 * deeper than max_depth (brackets inside strings count too: an upper bound). Blank lines, and a lone CR before
 * the newline (CRLF files), are not suspect. The numpy version took ~1.4 ms a MB in six passes; this is one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* Whether p[0..n) is UTF-8 as RFC 3629 has it (no overlong form, no surrogate, nothing above U+10FFFF): what
 * Arrow's validation and Python's decoder accept. ASCII is passed over eight bytes a step. */
static int utf8_valid(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0; /* a continuation byte first, C0/C1 (overlong), F5 and above */
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            unsigned char d = p[i + k];
            if ((d & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (d & 0x3F);
        }
        if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
        if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
        i += len;
    }
    return 1;
}

/* json_lines_scan(data, max_depth) -> (suspect line indices: bytes of int64, lines that begin with "{", whether
 * the block is UTF-8). The UTF-8 check rides on the pass: a line with a byte above ASCII is checked (no sequence
 * holds a newline, so line by line is the whole block's answer), the others cost an OR per byte. */
PyObject *native_json_lines_scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buf;
    Py_ssize_t max_depth;
    if (!PyArg_ParseTuple(args, "y*n", &buf, &max_depth)) return NULL;
    const unsigned char *p = (const unsigned char *)buf.buf;
    Py_ssize_t size = buf.len;
    int64_t *suspect = NULL;
    size_t len = 0, cap = 0;
    int64_t objects = 0;
    int failed = 0, utf8 = 1;
    Py_BEGIN_ALLOW_THREADS
    int64_t line = 0;
    Py_ssize_t i = 0;
    while (i < size) { /* i is the start of a line */
        unsigned char first = p[i];
        int bad;
        if (first == '{') {
            objects++;
            bad = 0;
        } else if (first == '\n') {
            bad = 0;
        } else if (first == '\r') {
            bad = !(i + 1 == size || p[i + 1] == '\n');
        } else {
            bad = 1;
        }
        const unsigned char *nl = memchr(p + i, '\n', (size_t)(size - i));
        Py_ssize_t j = nl ? (Py_ssize_t)(nl - p) : size;
        unsigned char high = 0;
        if (!bad) {
            Py_ssize_t opens = 0; /* a vectorised count; the exact depth only where it could pass the limit */
            for (Py_ssize_t k = i; k < j; k++) {
                opens += (p[k] | 32) == '{'; /* "{" or "[" */
                high |= p[k];
            }
            if (opens > max_depth) {
                Py_ssize_t depth = 0, deepest = 0;
                for (Py_ssize_t k = i; k < j; k++) {
                    unsigned char ch = p[k] | 32;
                    if (ch == '{') {
                        if (++depth > deepest) deepest = depth;
                    } else if (ch == '}') { /* "}" or "]" */
                        depth--;
                    }
                }
                bad = deepest > max_depth;
            }
        } else {
            for (Py_ssize_t k = i; k < j; k++) high |= p[k];
        }
        if (utf8 && (high & 0x80) && !utf8_valid(p + i, (size_t)(j - i))) utf8 = 0;
        if (bad) {
            if (len == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                int64_t *grown = realloc(suspect, ncap * sizeof(int64_t));
                if (grown == NULL) {
                    failed = 1;
                    break;
                }
                suspect = grown;
                cap = ncap;
            }
            suspect[len++] = line;
        }
        line++;
        i = j + 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyObject *result = NULL;
    if (failed)
        PyErr_NoMemory();
    else
        result = Py_BuildValue("(y#LO)", len ? (const char *)suspect : "", (Py_ssize_t)(len * sizeof(int64_t)), (long long)objects,
                               utf8 ? Py_True : Py_False);
    free(suspect);
    return result;
}

/* count_byte(data, byte) -> how many times the byte occurs in data (any buffer): newlines of a block of lines at
 * memchr speed (bytes.count visits every byte in a plain loop, ~0.6 ms a MB). */
PyObject *native_count_byte(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buf;
    int byte;
    if (!PyArg_ParseTuple(args, "y*i", &buf, &byte)) return NULL;
    if (byte < 0 || byte > 255) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "byte must be 0..255");
        return NULL;
    }
    int64_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    const char *p = (const char *)buf.buf, *end = p + buf.len;
    while (p < end && (p = memchr(p, byte, (size_t)(end - p))) != NULL) {
        count++;
        p++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyLong_FromLongLong(count);
}

/* byte_counts(offsets, data, start, n, wide, byte) -> bytes of n int32: how often the byte occurs in each value of
 * an Arrow string column (spaces per value: the free-text test's word count). Nulls must be filled with "". */
PyObject *native_byte_counts(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    int byte;
    if (column_and_int_from_args(args, &c, &byte) < 0) return NULL;
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    if (out != NULL) {
        int32_t *dst = (int32_t *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        unsigned char want = (unsigned char)byte;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t a = column_offset(&c, i), b = column_offset(&c, i + 1);
            int32_t count = 0;
            for (int64_t k = a; k < b; k++) count += src[k] == want;
            dst[i] = count;
        }
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    return out;
}
