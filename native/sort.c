/* Sorting 64-bit integer keys in place.
 *
 * Subject and value hashes (random 64-bit keys) are sorted to count distinct people exactly, and (value, rule)
 * pairs to de-duplicate matches. Keys spread over their range (hashes, pairs) are placed by their leading bits into
 * buckets of about two keys, in one counting pass and one scatter, and a last insertion pass orders each bucket;
 * that is three passes over the keys where a byte-at-a-time radix sort makes sixteen (random keys: 27 -> 10-11 ns
 * a key, as fast as numpy 2.4's vectorised sort with AVX2, whatever numpy and processor this runs with). Keys that
 * differ only in their low three bytes (small indices) keep the radix sort's three passes, and a bucket that gets
 * many keys (keys bunched in a small part of their range) is sorted by it too. Signed keys sort with their sign
 * bit flipped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

/* LSD radix sort, one byte a pass; a pass whose byte is the same in every key is skipped. */
static void radix_sort64(uint64_t *a, uint64_t *tmp, size_t n, uint64_t flip) {
    size_t counts[8][256];
    memset(counts, 0, sizeof counts);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = a[i] ^ flip;
        for (int b = 0; b < 8; b++) counts[b][(v >> (8 * b)) & 0xff]++;
    }
    uint64_t *src = a, *dst = tmp;
    uint64_t first = a[0] ^ flip;
    for (int b = 0; b < 8; b++) {
        if (counts[b][(first >> (8 * b)) & 0xff] == n) continue; /* every key has this byte */
        size_t pos[256], sum = 0;
        for (int k = 0; k < 256; k++) {
            pos[k] = sum;
            sum += counts[b][k];
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t v = src[i];
            dst[pos[((v ^ flip) >> (8 * b)) & 0xff]++] = v;
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof(uint64_t));
}

#define WANT_MAX 22 /* at most 4 M buckets (32 MB of bucket starts, for 4 M keys or more) */
#define BUCKET_MAX 32 /* keys a bucket may hold and still be ordered by the insertion pass */

/* Sorts a[0..n) using tmp (room for n keys) and returns 0, or -1 when out of memory (a is then unchanged). */
static int bucket_sort64(uint64_t *a, uint64_t *tmp, size_t n, uint64_t flip) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = a[i] ^ flip;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (lo == hi) return 0; /* one key repeated */
    int differing = 64 - __builtin_clzll((unsigned long long)(lo ^ hi)); /* bits above these are the same in all */
    if (differing <= 24) { /* three radix passes or fewer: (value, rule) pairs, small indices */
        radix_sort64(a, tmp, n, flip);
        return 0;
    }
    int want = 62 - __builtin_clzll((unsigned long long)n); /* about two keys a bucket: the counts stay in cache */
    want = want < 8 ? 8 : (want > WANT_MAX ? WANT_MAX : want);
    int bits = 64 - __builtin_clzll((unsigned long long)(hi - lo));
    int shift = bits > want ? bits - want : 0;
    size_t buckets = (size_t)((hi - lo) >> shift) + 1;
    size_t *start = calloc(buckets + 1, sizeof(size_t));
    if (start == NULL) return -1;
    for (size_t i = 0; i < n; i++) start[(((a[i] ^ flip) - lo) >> shift) + 1]++;
    size_t largest = 0;
    for (size_t k = 1; k <= buckets; k++) {
        largest = start[k] > largest ? start[k] : largest;
        start[k] += start[k - 1];
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t v = a[i] ^ flip;
        tmp[start[(v - lo) >> shift]++] = v; /* start[k] ends as bucket k's end */
    }
    if (largest > BUCKET_MAX) { /* bunched keys: the crowded buckets by the radix sort, a's room as its scratch */
        size_t begin = 0;
        for (size_t k = 0; k < buckets; k++) {
            size_t end = start[k];
            if (end - begin > BUCKET_MAX) radix_sort64(tmp + begin, a + begin, end - begin, 0);
            begin = end;
        }
    }
    free(start);
    /* Buckets are in order and hold at most BUCKET_MAX unordered keys: insertion moves a key only inside its own. */
    for (size_t i = 1; i < n; i++) {
        uint64_t v = tmp[i];
        size_t j = i;
        while (j > 0 && tmp[j - 1] > v) {
            tmp[j] = tmp[j - 1];
            j--;
        }
        tmp[j] = v;
    }
    for (size_t i = 0; i < n; i++) a[i] = tmp[i] ^ flip;
    return 0;
}

/* sort64(buffer, signed): sorts a writable, contiguous buffer of int64 (signed true) or uint64 keys in place. */
PyObject *native_sort64(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buf;
    int is_signed;
    if (!PyArg_ParseTuple(args, "w*p", &buf, &is_signed)) return NULL;
    if (buf.len % (Py_ssize_t)sizeof(uint64_t) != 0 || !PyBuffer_IsContiguous(&buf, 'C')) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "sort64 needs a contiguous buffer of 64-bit keys");
        return NULL;
    }
    size_t n = (size_t)buf.len / sizeof(uint64_t);
    uint64_t *a = (uint64_t *)buf.buf;
    uint64_t flip = is_signed ? (uint64_t)1 << 63 : 0;
    if (n > 1) {
        uint64_t *tmp = malloc(n * sizeof(uint64_t));
        if (tmp == NULL) {
            PyBuffer_Release(&buf);
            return PyErr_NoMemory();
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = bucket_sort64(a, tmp, n, flip);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            free(tmp);
            PyBuffer_Release(&buf);
            return PyErr_NoMemory();
        }
        free(tmp);
    }
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* merge_unique64(a, b, out) -> n: the union of two ascending uint64 runs written to out (room for both), ascending,
 * without repeats and without 0 (no key); the first n entries of out hold it. One linear pass: the former path
 * concatenated the runs, sorted them stably and dropped repeats in three passes. */
PyObject *native_merge_unique64(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer a, b, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &a, &b, &out)) return NULL;
    Py_ssize_t na = a.len / 8, nb = b.len / 8;
    PyObject *result = NULL;
    if (a.len % 8 || b.len % 8 || out.len < (na + nb) * 8) {
        PyErr_SetString(PyExc_ValueError, "runs must be uint64 and out must hold both");
        goto done;
    }
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint64_t *x = (const uint64_t *)a.buf, *y = (const uint64_t *)b.buf;
    uint64_t *z = (uint64_t *)out.buf;
    Py_ssize_t i = 0, j = 0;
    uint64_t last = 0; /* 0 is never kept: it doubles as "nothing yet" */
    /* Without a branch on the keys (random keys mispredict half of them): the smaller head is written at n, and n
     * moves on unless it repeats the last key; equal heads both advance. z[n] is in bounds as n <= i + j. */
    while (i < na && j < nb) {
        uint64_t xv = x[i], yv = y[j];
        uint64_t v = xv < yv ? xv : yv;
        i += xv <= yv;
        j += yv <= xv;
        z[n] = v;
        n += v != last;
        last = v;
    }
    for (; i < na; i++) {
        z[n] = x[i];
        n += x[i] != last;
        last = x[i];
    }
    for (; j < nb; j++) {
        z[n] = y[j];
        n += y[j] != last;
        last = y[j];
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(n);
done:
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

#define LINEAR_HEADS 4

/* One key of an ascending pass counted unless it repeats the last one; 0 (no key) sorts first and equals the initial
 * last, so it is never counted. */
static inline void count_new(uint64_t v, int64_t *count, uint64_t *last) {
    *count += v != *last;
    *last = v;
}

#define UNION_WINDOW 4096 /* keys taken from each run per round */

/* The distinct keys of k > LINEAR_HEADS runs, counted a window at a time: each round takes, from every run, its keys
 * up to the smallest last key of the runs' next UNION_WINDOW keys (so no key at or below it is left in any run, and
 * rounds never share a key), sorts them together and counts the changes. Random keys: ~13 ns a key whatever k is,
 * where a heap of the heads compared log2(k) of them per key (27 runs: 22 -> 10 ns a key). -1 when out of memory. */
static int64_t windowed_union_count(const Py_buffer *views, Py_ssize_t *pos, Py_ssize_t k) {
    size_t cap = (size_t)k * UNION_WINDOW;
    uint64_t *buf = malloc(cap * sizeof(uint64_t)), *tmp = malloc(cap * sizeof(uint64_t));
    int64_t count = -1;
    if (buf == NULL || tmp == NULL) goto done;
    count = 0;
    uint64_t last = 0;
    for (;;) {
        uint64_t bound = UINT64_MAX;
        int any = 0;
        for (Py_ssize_t r = 0; r < k; r++) {
            Py_ssize_t left = views[r].len / 8 - pos[r];
            if (left <= 0) continue;
            any = 1;
            if (left > UNION_WINDOW) {
                uint64_t end = ((const uint64_t *)views[r].buf)[pos[r] + UNION_WINDOW - 1];
                bound = end < bound ? end : bound;
            }
        }
        if (!any) break;
        size_t m = 0;
        for (Py_ssize_t r = 0; r < k; r++) {
            const uint64_t *run = (const uint64_t *)views[r].buf + pos[r];
            Py_ssize_t left = views[r].len / 8 - pos[r];
            size_t lo = 0, hi = (size_t)(left < UNION_WINDOW ? left : UNION_WINDOW); /* keys <= bound: run[0, lo) */
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (run[mid] <= bound) lo = mid + 1;
                else hi = mid;
            }
            memcpy(buf + m, run, lo * sizeof(uint64_t));
            m += lo;
            pos[r] += (Py_ssize_t)lo;
        }
        if (bucket_sort64(buf, tmp, m, 0) < 0) {
            count = -1;
            goto done;
        }
        for (size_t t = 0; t < m; t++) count_new(buf[t], &count, &last);
    }
done:
    free(buf);
    free(tmp);
    return count;
}

/* union_count64(runs) -> how many distinct keys a list of ascending uint64 runs (each without repeats or 0) holds
 * together, nothing kept. The runs may be memory-mapped files (spilled runs): they are read once, in order. Up to
 * LINEAR_HEADS runs, one pass comparing their heads; beyond, a window of each at a time (windowed_union_count). */
PyObject *native_union_count64(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *seq = PySequence_Fast(arg, "runs must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    Py_buffer *views = calloc((size_t)(k ? k : 1), sizeof(Py_buffer));
    Py_ssize_t *pos = calloc((size_t)(k ? k : 1), sizeof(Py_ssize_t));
    Py_ssize_t opened = 0;
    PyObject *result = NULL;
    if (views == NULL || pos == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; opened < k; opened++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, opened), &views[opened], PyBUF_C_CONTIGUOUS) < 0) goto done;
        if (views[opened].len % 8) {
            opened++;
            PyErr_SetString(PyExc_ValueError, "runs must be uint64");
            goto done;
        }
    }
    int64_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    if (k <= LINEAR_HEADS) { /* a few runs: comparing every head costs less than sorting windows */
        uint64_t last = 0;
        for (;;) {
            Py_ssize_t best = -1;
            uint64_t v = 0;
            for (Py_ssize_t r = 0; r < k; r++) {
                if (pos[r] < views[r].len / 8) {
                    uint64_t x = ((const uint64_t *)views[r].buf)[pos[r]];
                    if (best < 0 || x < v) {
                        best = r;
                        v = x;
                    }
                }
            }
            if (best < 0) break;
            pos[best]++;
            count_new(v, &count, &last);
        }
    } else {
        count = windowed_union_count(views, pos, k);
    }
    Py_END_ALLOW_THREADS
    result = count < 0 ? PyErr_NoMemory() : PyLong_FromLongLong(count);
done:
    for (Py_ssize_t r = 0; r < opened; r++) PyBuffer_Release(&views[r]);
    free(views);
    free(pos);
    Py_DECREF(seq);
    return result;
}
