/* Shannon entropy, in bits per byte, of every value of an Arrow string column, in one call.
 *
 * The `secret` check of credential-named fields judges every value of the column by its entropy. Per value the
 * bytes are counted in a 256-entry table, with a bitmap of the bytes present so that only those are visited and
 * reset, and the terms -p*log2(p) are summed in ascending byte order, the order the numpy path summed them in
 * (tests/detect/former.py). Nulls must be filled with "" by the caller; an empty
 * value has entropy 0.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "native.h"

/* Entropy of src[a, b) in bits per byte; counts must be all zero and is left so (native.h). */
double value_entropy(const unsigned char *src, int64_t a, int64_t b, uint32_t counts[256]) {
    uint64_t present[4] = {0, 0, 0, 0};
    for (int64_t k = a; k < b; k++) {
        unsigned char ch = src[k];
        counts[ch]++;
        present[ch >> 6] |= (uint64_t)1 << (ch & 63);
    }
    double sum = 0.0, len = (double)(b - a);
    for (int w = 0; w < 4; w++) { /* the bytes present, in ascending order */
        uint64_t bits = present[w];
        while (bits) {
            int v = w * 64 + __builtin_ctzll(bits);
            bits &= bits - 1;
            double p = (double)counts[v] / len;
            sum += -p * log2(p);
            counts[v] = 0;
        }
    }
    return sum;
}

/* entropy(offsets, data, start, n, wide) -> bytes of n float64 */
PyObject *native_entropy(PyObject *self, PyObject *args) {
    (void)self;
    Column c;
    if (column_from_args(args, &c) < 0) return NULL;
    Py_ssize_t n = c.n;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(double));
    if (out != NULL) {
        double *dst = (double *)PyBytes_AS_STRING(out);
        const unsigned char *src = c.have_data ? (const unsigned char *)c.data.buf : (const unsigned char *)"";
        Py_BEGIN_ALLOW_THREADS
        uint32_t counts[256] = {0}; /* back to zero after each value: only the bytes it holds are touched */
        for (Py_ssize_t i = 0; i < n; i++) dst[i] = value_entropy(src, column_offset(&c, i), column_offset(&c, i + 1), counts);
        Py_END_ALLOW_THREADS
    }
    column_close(&c);
    return out;
}
