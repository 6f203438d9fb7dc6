/* The matcher's hits of one column as the engine's (value, rule) pairs, in one pass (detect/engine.py,
 * RuleSet.scan_column): every distinct pair once, ordered by value then rule; where a value's rules (those whose
 * matches cannot span lines) are all of one category, only the most specific of them (the first of the highest
 * priority) is kept; and whether each value is left with more than one rule. Matches come from one Vectorscan pass
 * in order of their end, so the value indices arrive ascending and only each value's few rules need ordering. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "native.h"

static int get_int64s(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len % 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s is not a buffer of int64", what);
        return -1;
    }
    return 0;
}

/* value_pairs(rules, values, category, priority, spanning, collapse) -> (values, rules, multi) as bytearrays
 * (int64, int64, bool: arrays the caller may write), or None when the value indices do not ascend (the caller sorts
 * the pairs first). `category` and `priority` are int64 per rule index, `spanning` a byte per rule index (1: its
 * matches can hold a newline). */
PyObject *native_value_pairs(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rules_obj, *values_obj, *cat_obj, *pri_obj, *span_obj;
    int collapse;
    if (!PyArg_ParseTuple(args, "OOOOOp", &rules_obj, &values_obj, &cat_obj, &pri_obj, &span_obj, &collapse)) return NULL;
    Py_buffer rv, vv, cv, pv, sv;
    int got = 0;
    PyObject *result = NULL, *out_v = NULL, *out_r = NULL, *out_m = NULL;
    if (get_int64s(rules_obj, &rv, "rules") < 0) return NULL;
    got = 1;
    if (get_int64s(values_obj, &vv, "values") < 0) goto done;
    got = 2;
    if (get_int64s(cat_obj, &cv, "category") < 0) goto done;
    got = 3;
    if (get_int64s(pri_obj, &pv, "priority") < 0) goto done;
    got = 4;
    if (PyObject_GetBuffer(span_obj, &sv, PyBUF_SIMPLE) < 0) goto done;
    got = 5;
    Py_ssize_t n = rv.len / 8, nrules = cv.len / 8;
    if (vv.len / 8 != n || pv.len / 8 != nrules || sv.len != nrules) {
        PyErr_SetString(PyExc_ValueError, "value_pairs: mismatched buffer lengths");
        goto done;
    }
    const int64_t *rules = rv.buf, *values = vv.buf, *cat = cv.buf, *pri = pv.buf;
    const unsigned char *spans = sv.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (rules[i] < 0 || rules[i] >= nrules) {
            PyErr_SetString(PyExc_ValueError, "value_pairs: a rule index out of range");
            goto done;
        }
        if (i && values[i] < values[i - 1]) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
    }
    out_v = PyByteArray_FromStringAndSize(NULL, n * 8);
    out_r = PyByteArray_FromStringAndSize(NULL, n * 8);
    out_m = PyByteArray_FromStringAndSize(NULL, n);
    if (out_v == NULL || out_r == NULL || out_m == NULL) goto done;
    int64_t *ov = (int64_t *)PyByteArray_AS_STRING(out_v), *orr = (int64_t *)PyByteArray_AS_STRING(out_r);
    unsigned char *om = (unsigned char *)PyByteArray_AS_STRING(out_m);
    Py_ssize_t k = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t a = 0; a < n;) {
        Py_ssize_t b = a + 1;
        while (b < n && values[b] == values[a]) b++;
        /* the value's rules, ascending and without repeats, at orr[k..k+m) (insertion: a value has few) */
        Py_ssize_t m = 0;
        for (Py_ssize_t i = a; i < b; i++) {
            int64_t r = rules[i];
            Py_ssize_t j = m;
            while (j > 0 && orr[k + j - 1] > r) {
                orr[k + j] = orr[k + j - 1]; /* shifted up a place, undone below if r is a repeat */
                j--;
            }
            if (j > 0 && orr[k + j - 1] == r) {
                for (; j < m; j++) orr[k + j] = orr[k + j + 1];
                continue;
            }
            orr[k + j] = r;
            m++;
        }
        if (collapse && m > 1) {
            /* non-spanning rules all of one category: keep the first of the highest priority among them */
            int64_t c0 = -1, best = 0;
            Py_ssize_t top = -1, local = 0;
            int same = 1;
            for (Py_ssize_t j = 0; j < m; j++) {
                int64_t r = orr[k + j];
                if (spans[r]) continue;
                if (local++ == 0) c0 = cat[r];
                else if (cat[r] != c0) same = 0;
                if (top < 0 || pri[r] > best) {
                    best = pri[r];
                    top = j;
                }
            }
            if (same && local > 1) {
                Py_ssize_t w = 0;
                for (Py_ssize_t j = 0; j < m; j++) {
                    int64_t r = orr[k + j];
                    if (spans[r] || j == top) orr[k + w++] = r;
                }
                m = w;
            }
        }
        for (Py_ssize_t j = 0; j < m; j++) {
            ov[k + j] = values[a];
            om[k + j] = m > 1;
        }
        k += m;
        a = b;
    }
    Py_END_ALLOW_THREADS
    if (PyByteArray_Resize(out_v, k * 8) < 0 || PyByteArray_Resize(out_r, k * 8) < 0 || PyByteArray_Resize(out_m, k) < 0) goto done;
    result = Py_BuildValue("(OOO)", out_v, out_r, out_m);
done:
    Py_XDECREF(out_v);
    Py_XDECREF(out_r);
    Py_XDECREF(out_m);
    if (got >= 5) PyBuffer_Release(&sv);
    if (got >= 4) PyBuffer_Release(&pv);
    if (got >= 3) PyBuffer_Release(&cv);
    if (got >= 2) PyBuffer_Release(&vv);
    if (got >= 1) PyBuffer_Release(&rv);
    return result;
}
