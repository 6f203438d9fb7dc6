/* Functions of spillguard._native defined outside the module file (native/matcher.c). */
#ifndef SPILLGUARD_NATIVE_H
#define SPILLGUARD_NATIVE_H
#include <Python.h>

PyObject *native_sha256(PyObject *self, PyObject *args);
PyObject *native_hmac_sha256(PyObject *self, PyObject *args);
PyObject *native_keyed_hash64(PyObject *self, PyObject *args);

#endif
