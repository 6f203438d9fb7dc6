/* An Arrow string column as the native core reads it: its offsets and data buffers (from Python's buffer
 * protocol, no copy), the array's start and length, 32- or 64-bit offsets; checked once so that every value lies
 * inside the data buffer. Nulls must be filled with "" by the caller. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "native.h"

int column_open(Column *c, PyObject *off_obj, PyObject *data_obj, Py_ssize_t start, Py_ssize_t n, int wide) {
    memset(c, 0, sizeof(*c));
    if (start < 0 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative start or length");
        return -1;
    }
    if (PyObject_GetBuffer(off_obj, &c->off, PyBUF_SIMPLE) < 0) return -1;
    c->have_data = data_obj != Py_None;
    if (c->have_data && PyObject_GetBuffer(data_obj, &c->data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&c->off);
        return -1;
    }
    c->start = start;
    c->n = n;
    c->wide = wide;
    size_t width = wide ? 8 : 4;
    if ((size_t)c->off.len < (size_t)(start + n + 1) * width) {
        PyErr_SetString(PyExc_ValueError, "offsets buffer shorter than the array");
        goto bad;
    }
    /* every value must lie inside the data buffer and offsets must not go backwards */
    int64_t prev = -1;
    for (Py_ssize_t i = 0; i <= n; i++) {
        int64_t o = wide ? ((const int64_t *)c->off.buf)[start + i] : (int64_t)((const int32_t *)c->off.buf)[start + i];
        if (o < prev || o < 0 || (c->have_data ? o > (int64_t)c->data.len : o != 0)) {
            PyErr_SetString(PyExc_ValueError, "offsets do not fit the data buffer");
            goto bad;
        }
        prev = o;
    }
    return 0;
bad:
    PyBuffer_Release(&c->off);
    if (c->have_data) PyBuffer_Release(&c->data);
    return -1;
}

void column_close(Column *c) {
    PyBuffer_Release(&c->off);
    if (c->have_data) PyBuffer_Release(&c->data);
}

int column_from_args(PyObject *args, Column *c) {
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    if (!PyArg_ParseTuple(args, "OOnnp", &off_obj, &data_obj, &start, &n, &wide)) return -1;
    return column_open(c, off_obj, data_obj, start, n, wide);
}

int column_and_int_from_args(PyObject *args, Column *c, int *value) {
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    if (!PyArg_ParseTuple(args, "OOnnpi", &off_obj, &data_obj, &start, &n, &wide, value)) return -1;
    return column_open(c, off_obj, data_obj, start, n, wide);
}

int column_and_table_from_args(PyObject *args, Column *c, Py_buffer *table, Py_ssize_t size, const char *what) {
    PyObject *off_obj, *data_obj;
    Py_ssize_t start, n;
    int wide;
    if (!PyArg_ParseTuple(args, "OOnnpy*", &off_obj, &data_obj, &start, &n, &wide, table)) return -1;
    if (size > 0 ? table->len != size : table->len % -size != 0) {
        PyBuffer_Release(table);
        PyErr_Format(PyExc_ValueError, "%s: wrong size (%zd bytes)", what, table->len);
        return -1;
    }
    if (column_open(c, off_obj, data_obj, start, n, wide) < 0) {
        PyBuffer_Release(table);
        return -1;
    }
    return 0;
}
