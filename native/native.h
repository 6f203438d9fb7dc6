/* What the files of spillguard._native share (the module itself is native/matcher.c). */
#ifndef SPILLGUARD_NATIVE_H
#define SPILLGUARD_NATIVE_H
#include <Python.h>
#include <stdint.h>

/* An Arrow string column's buffers (native/column.c). */
typedef struct {
    Py_buffer off, data;
    int have_data;
    Py_ssize_t start, n;
    int wide;
} Column;

int column_open(Column *c, PyObject *off_obj, PyObject *data_obj, Py_ssize_t start, Py_ssize_t n, int wide);
void column_close(Column *c);
/* The column of a call's arguments (offsets, data, start, n, wide): parsed and opened, or -1 with the error set. */
int column_from_args(PyObject *args, Column *c);
/* A column and one int after it (offsets, data, start, n, wide, value). */
int column_and_int_from_args(PyObject *args, Column *c, int *value);
/* The column and one buffer after it (offsets, data, start, n, wide, table): the buffer `size` bytes long, or a
 * multiple of -size bytes when size is negative; -1 with the error set (nothing left to release). */
int column_and_table_from_args(PyObject *args, Column *c, Py_buffer *table, Py_ssize_t size, const char *what);

static inline int64_t column_offset(const Column *c, Py_ssize_t i) {
    return c->wide ? ((const int64_t *)c->off.buf)[c->start + i] : (int64_t)((const int32_t *)c->off.buf)[c->start + i];
}

PyObject *native_sha256(PyObject *self, PyObject *args);
PyObject *native_hmac_sha256(PyObject *self, PyObject *args);
PyObject *native_keyed_hash64(PyObject *self, PyObject *args);
PyObject *native_sort64(PyObject *self, PyObject *args);
PyObject *native_merge_unique64(PyObject *self, PyObject *args);
PyObject *native_union_count64(PyObject *self, PyObject *arg);
PyObject *native_entropy(PyObject *self, PyObject *args);
PyObject *native_secret_check(PyObject *self, PyObject *args);
PyObject *native_any_byte(PyObject *self, PyObject *args);
PyObject *native_whole_linear(PyObject *self, PyObject *args);
PyObject *native_byte_set(PyObject *self, PyObject *args);
PyObject *native_byte_runs(PyObject *self, PyObject *args);
PyObject *native_name_shape(PyObject *self, PyObject *args);
PyObject *native_phone_shape(PyObject *self, PyObject *args);
PyObject *native_card_check(PyObject *self, PyObject *args);
PyObject *native_shapes(PyObject *self, PyObject *args);
/* Entropy of src[a, b) in bits per byte (native/entropy.c); counts must be zero and are left so. */
double value_entropy(const unsigned char *src, int64_t a, int64_t b, uint32_t counts[256]);
PyObject *native_json_lines_scan(PyObject *self, PyObject *args);
PyObject *native_count_byte(PyObject *self, PyObject *args);
PyObject *native_byte_counts(PyObject *self, PyObject *args);
PyObject *native_json_lines_columns(PyObject *self, PyObject *arg);
int jsonl_ready(void);
PyObject *native_copy_text_columns(PyObject *self, PyObject *args);
PyObject *native_copy_out_read(PyObject *self, PyObject *args);
PyObject *native_json_object_lines(PyObject *self, PyObject *args);
PyObject *native_value_pairs(PyObject *self, PyObject *args);

#endif
