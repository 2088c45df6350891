/* pyuftp.message._native, the writing side: the checker's quick pass over a leaf list and a
 * flat template loop's text (see _native.c for what the module promises: None or False where
 * it is not sure, and the Python code does the work). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_native.h"

/* all_fine(items, keys, required, lows, highs, checks[, others]) -> bool
 * Are all these items (a list or tuple) of one node fine, as far as its attributes go? Each
 * must be a dict (exactly) whose keys are among `keys` (and `others`, not checked here); for column i, an absent or None value is fine unless
 * required[i]; a present one must be an int (exactly) within lows[i]..highs[i] where
 * checks[i] is None, else checks[i](value) must be None. False says only "look closer", as
 * the Python version in speed.list_check does; an error of a check function propagates. */
PyObject *native_all_fine(PyObject *self, PyObject *args)
{
    PyObject *items, *keys, *required, *lows, *highs, *checks, *others = NULL;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!|O!", &items, &PyTuple_Type, &keys, &PyTuple_Type,
                          &required, &PyTuple_Type, &lows, &PyTuple_Type, &highs,
                          &PyTuple_Type, &checks, &PyTuple_Type, &others)) {
        return NULL;
    }
    Py_ssize_t columns = PyTuple_GET_SIZE(keys);
    if (PyTuple_GET_SIZE(required) != columns || PyTuple_GET_SIZE(lows) != columns
            || PyTuple_GET_SIZE(highs) != columns || PyTuple_GET_SIZE(checks) != columns
            || columns > 64) {
        PyErr_SetString(PyExc_TypeError, "keys, required, lows, highs, checks: one length");
        return NULL;
    }
    long long low[64], high[64];
    for (Py_ssize_t i = 0; i < columns; i++) {
        low[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(lows, i));
        high[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(highs, i));
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    if (!PyList_CheckExact(items) && !PyTuple_CheckExact(items)) {
        Py_RETURN_FALSE;
    }
    /* A list may change while a check function runs: index it afresh each time. */
    for (Py_ssize_t n = 0; n < PySequence_Fast_GET_SIZE(items); n++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, n);
        if (!PyDict_CheckExact(item)) {
            Py_RETURN_FALSE;
        }
        Py_INCREF(item);
        Py_ssize_t present = 0;
        int fine = 1;
        for (Py_ssize_t i = 0; fine && i < columns; i++) {
            PyObject *value = PyDict_GetItemWithError(item, PyTuple_GET_ITEM(keys, i));
            if (value == NULL && PyErr_Occurred()) {
                Py_DECREF(item);
                return NULL;
            }
            if (value != NULL) {
                present++;
            }
            if (value == NULL || value == Py_None) {
                fine = !PyObject_IsTrue(PyTuple_GET_ITEM(required, i));
                continue;
            }
            PyObject *check = PyTuple_GET_ITEM(checks, i);
            if (check == Py_None) {
                int overflow = 0;
                long long number = PyLong_CheckExact(value)
                    ? PyLong_AsLongLongAndOverflow(value, &overflow) : 0;
                fine = PyLong_CheckExact(value) && !overflow && number >= low[i]
                    && number <= high[i];
                continue;
            }
            Py_INCREF(value);
            PyObject *reason = PyObject_CallOneArg(check, value);
            Py_DECREF(value);
            if (reason == NULL) {
                Py_DECREF(item);
                return NULL;
            }
            fine = reason == Py_None;
            Py_DECREF(reason);
        }
        /* Keys of child elements (`others`) may be there too: they are checked elsewhere. */
        for (Py_ssize_t i = 0; fine && others != NULL && i < PyTuple_GET_SIZE(others); i++) {
            int found = PyDict_Contains(item, PyTuple_GET_ITEM(others, i));
            if (found < 0) {
                Py_DECREF(item);
                return NULL;
            }
            present += found;
        }
        fine = fine && present == PyDict_GET_SIZE(item);
        Py_DECREF(item);
        if (!fine) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* A growing ASCII buffer for render_rows. */
typedef struct {
    char *data;
    Py_ssize_t size, used;
} Buffer;

static int put(Buffer *out, const char *text, Py_ssize_t length)
{
    if (out->used + length > out->size) {
        Py_ssize_t size = (out->size + length) * 2;
        char *data = PyMem_Realloc(out->data, size);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->data = data;
        out->size = size;
    }
    memcpy(out->data + out->used, text, length);
    out->used += length;
    return 0;
}

#define RENDER_OK 0
#define RENDER_UNSURE 1
#define RENDER_ERROR -1

/* An int's decimal digits, as str(int) writes them (snprintf("%lld") took half the time of
 * a 96-ISP loop). */
static int put_int(Buffer *out, long long number)
{
    char digits[24];
    char *end = digits + sizeof digits, *at = end;
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number
                                              : (unsigned long long)number;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0) {
        *--at = '-';
    }
    return put(out, at, end - at);
}

/* An exact str, escaped for an attribute as MarkupSafe's escape() does it (& < > " '); only
 * ASCII text (anything else: UNSURE, Python writes it). */
static int put_text(Buffer *out, PyObject *text)
{
    if (!PyUnicode_IS_ASCII(text)) {
        return RENDER_UNSURE;
    }
    const char *data = (const char *)PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), from = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        const char *entity;
        switch (data[i]) {
        case '&': entity = "&amp;"; break;
        case '<': entity = "&lt;"; break;
        case '>': entity = "&gt;"; break;
        case '"': entity = "&#34;"; break;
        case '\'': entity = "&#39;"; break;
        default: continue;
        }
        if (put(out, data + from, i - from) || put(out, entity, strlen(entity))) {
            return RENDER_ERROR;
        }
        from = i + 1;
    }
    return put(out, data + from, length - from) ? RENDER_ERROR : RENDER_OK;
}

/* A value as the generated Python writes it: an exact int's digits, an exact str escaped;
 * anything else (a bool, a Decimal, a Markup, None ...) is UNSURE. */
static int put_value(Buffer *out, PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        return put_text(out, value);
    }
    if (!PyLong_CheckExact(value)) {
        return RENDER_UNSURE;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        return RENDER_UNSURE;
    }
    if (number == -1 && PyErr_Occurred()) {
        return RENDER_ERROR;
    }
    return put_int(out, number) ? RENDER_ERROR : RENDER_OK;
}

/* One item through `ops`: ("c", text) writes text, ("f", key) the value at key, ("x", key,
 * index) what filters[index](value at key) returns (a filter is called on any value, None
 * included, as the template calls it), ("g", key, ops) writes ops when the value at key is
 * present and not None. A value is written as put_value says. */
static int render_item(PyObject *item, PyObject *ops, PyObject *filters, Buffer *out)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ops); i++) {
        PyObject *op = PyTuple_GET_ITEM(ops, i);
        if (!PyTuple_CheckExact(op) || PyTuple_GET_SIZE(op) < 2) {
            return RENDER_UNSURE;
        }
        PyObject *kind = PyTuple_GET_ITEM(op, 0), *arg = PyTuple_GET_ITEM(op, 1);
        if (!PyUnicode_Check(kind) || !PyUnicode_Check(arg)) {
            return RENDER_UNSURE;
        }
        Py_UCS4 what = PyUnicode_READ_CHAR(kind, 0);
        if (what == 'c') {
            if (!PyUnicode_IS_ASCII(arg)) {
                return RENDER_UNSURE;
            }
            if (put(out, (const char *)PyUnicode_DATA(arg), PyUnicode_GET_LENGTH(arg))) {
                return RENDER_ERROR;
            }
            continue;
        }
        PyObject *value = PyDict_GetItemWithError(item, arg);
        if (value == NULL && PyErr_Occurred()) {
            return RENDER_ERROR;
        }
        if (what == 'g') {
            if (value == NULL || value == Py_None) {
                continue;
            }
            if (PyTuple_GET_SIZE(op) != 3 || !PyTuple_CheckExact(PyTuple_GET_ITEM(op, 2))) {
                return RENDER_UNSURE;
            }
            int done = render_item(item, PyTuple_GET_ITEM(op, 2), filters, out);
            if (done != RENDER_OK) {
                return done;
            }
            continue;
        }
        if (what == 'x') {
            Py_ssize_t index = PyTuple_GET_SIZE(op) == 3
                ? PyLong_AsSsize_t(PyTuple_GET_ITEM(op, 2)) : -1;
            if (index == -1 && PyErr_Occurred()) {
                PyErr_Clear();
            }
            if (index < 0 || filters == NULL || index >= PyTuple_GET_SIZE(filters)) {
                return RENDER_UNSURE;
            }
            PyObject *written = PyObject_CallOneArg(PyTuple_GET_ITEM(filters, index),
                                                    value != NULL ? value : Py_None);
            if (written == NULL) {
                return RENDER_ERROR;
            }
            int done = put_value(out, written);
            Py_DECREF(written);
            if (done != RENDER_OK) {
                return done;
            }
            continue;
        }
        if (what != 'f' || value == NULL) {
            return RENDER_UNSURE;  /* an absent key: Python writes what its getattr says */
        }
        int done = put_value(out, value);
        if (done != RENDER_OK) {
            return done;
        }
    }
    return RENDER_OK;
}

/* render_rows(items, ops[, filters]) -> str | None
 * The text that a template loop writes for these items, each through `ops` (see
 * render_item), for a list or tuple of exact dicts whose written values are exact ints or
 * ASCII strs; None for anything else, which the generated Python then writes. */
PyObject *native_render_rows(PyObject *self, PyObject *args)
{
    PyObject *items, *ops, *filters = NULL;
    if (!PyArg_ParseTuple(args, "OO!|O!", &items, &PyTuple_Type, &ops, &PyTuple_Type,
                          &filters)) {
        return NULL;
    }
    if (!PyList_CheckExact(items) && !PyTuple_CheckExact(items)) {
        Py_RETURN_NONE;
    }
    /* Room for a 96-ISP list at once: growing by doubling from nothing cost a few
     * reallocations per loop. */
    Buffer out = {PyMem_Malloc(8192), 8192, 0};
    if (out.data == NULL) {
        return PyErr_NoMemory();
    }
    int done = RENDER_OK;
    /* A filter may change the list while it runs: index it afresh each time. */
    for (Py_ssize_t n = 0; done == RENDER_OK && n < PySequence_Fast_GET_SIZE(items); n++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, n);
        if (!PyDict_CheckExact(item)) {
            done = RENDER_UNSURE;
            break;
        }
        Py_INCREF(item);
        done = render_item(item, ops, filters, &out);
        Py_DECREF(item);
    }
    PyObject *text = NULL;
    if (done == RENDER_OK) {
        text = PyUnicode_DecodeASCII(out.data ? out.data : "", out.used, "strict");
    } else if (done == RENDER_UNSURE) {
        text = Py_NewRef(Py_None);
    }
    PyMem_Free(out.data);
    return text;
}
