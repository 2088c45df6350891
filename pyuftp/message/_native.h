/* pyuftp.message._native: what _native_write.c gives _native.c's module table. */
#ifndef PYUFTP_NATIVE_H
#define PYUFTP_NATIVE_H

#include <Python.h>

PyObject *native_all_fine(PyObject *self, PyObject *args);
PyObject *native_render_rows(PyObject *self, PyObject *args);

#endif
