/* pyuftp.message._native: the reader's two hot loops over an lxml tree, in C.
 *
 * An optional speed-up of pyuftp/message/speed.py (which holds the pure-Python ways of doing
 * the same): it reads libxml2's tree through lxml's public element layout and never changes
 * it. Every function answers None (or False) where it is not sure, and the Python code then
 * does the work the plain way, so that what the caller sees never depends on this module:
 * the same dicts, in the same key order, or the same error.
 *
 * It needs only Python's headers and the libxml2 headers that lxml carries (lxml.get_include());
 * no libxml2 symbol is linked: the tree is read through its structs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <libxml/tree.h>

/* The head of lxml's element proxy, as lxml's public C API declares it (struct LxmlElement
 * in lxml/etree.h, `_Element [object LxmlElement]` in etreepublic.pxd). */
typedef struct {
    PyObject_HEAD
    PyObject *doc;
    xmlNode *c_node;
} ElementHead;

static PyTypeObject *element_type = NULL;

static xmlNode *node_of(PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, element_type)) {
        return NULL;
    }
    return ((ElementHead *)obj)->c_node;
}

/* What lxml counts as a child in len(element) and iteration. */
static int is_child(const xmlNode *node)
{
    return node->type == XML_ELEMENT_NODE || node->type == XML_COMMENT_NODE
        || node->type == XML_ENTITY_REF_NODE || node->type == XML_PI_NODE;
}

/* shape_fine(root, max_attributes, max_depth, max_children) -> bool
 * True when no element has more attributes or children than allowed and nothing is nested
 * deeper; False says "let the Python walk look" (it words the error). One pass, linear. */
static PyObject *shape_fine(PyObject *self, PyObject *args)
{
    PyObject *root;
    Py_ssize_t max_attributes, max_depth, max_children;
    if (!PyArg_ParseTuple(args, "Onnn", &root, &max_attributes, &max_depth, &max_children)) {
        return NULL;
    }
    xmlNode *top = node_of(root);
    if (top == NULL || top->type != XML_ELEMENT_NODE) {
        Py_RETURN_FALSE;
    }
    xmlNode *node = top;
    Py_ssize_t depth = 1;
    for (;;) {
        if (depth > max_depth) {
            Py_RETURN_FALSE;
        }
        if (node->type == XML_ELEMENT_NODE) {
            Py_ssize_t count = 0;
            for (xmlAttr *attr = node->properties; attr != NULL; attr = attr->next) {
                if (++count > max_attributes) {
                    Py_RETURN_FALSE;
                }
            }
            count = 0;
            xmlNode *first = NULL;
            for (xmlNode *child = node->children; child != NULL; child = child->next) {
                if (is_child(child)) {
                    if (first == NULL) {
                        first = child;
                    }
                    if (++count > max_children) {
                        Py_RETURN_FALSE;
                    }
                }
            }
            if (first != NULL) {  /* down */
                node = first;
                depth++;
                continue;
            }
        }
        /* across, or up until there is a next child */
        for (;;) {
            if (node == top) {
                Py_RETURN_TRUE;
            }
            xmlNode *next = node->next;
            while (next != NULL && !is_child(next)) {
                next = next->next;
            }
            if (next != NULL) {
                node = next;
                break;
            }
            node = node->parent;
            depth--;
        }
    }
}

/* An attribute's value when it is one text node (as parsed, with no entity references). */
static const xmlChar *attribute_text(const xmlAttr *attr)
{
    const xmlNode *text = attr->children;
    if (text == NULL) {
        return (const xmlChar *)"";
    }
    if (text->next != NULL || text->type != XML_TEXT_NODE || text->content == NULL) {
        return NULL;
    }
    return text->content;
}

/* int(text) for the plain digits that make up nearly every UFTP integer; NULL otherwise
 * (without an exception set): the caller then calls int() itself. */
static PyObject *small_int(const xmlChar *text)
{
    const xmlChar *p = text;
    int negative = 0;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    long long value = 0;
    int digits = 0;
    for (; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 18) {
            return NULL;
        }
        value = value * 10 + (*p - '0');
    }
    if (digits == 0) {
        return NULL;
    }
    return PyLong_FromLongLong(negative ? -value : value);
}

/* Result codes of read_attributes. */
#define READ_OK 0
#define READ_UNSURE 1   /* let the Python code do it */
#define READ_ERROR -1   /* a Python exception is set */

/* The fields of one element into `out`, in document order: for each attribute without a
 * namespace whose name is in `names`, out[keys[i]] = parses[i](value). */
static int read_attributes(const xmlNode *node, PyObject *names, PyObject *keys,
                           PyObject *parses, PyObject *out)
{
    Py_ssize_t known = PyTuple_GET_SIZE(names);
    for (const xmlAttr *attr = node->properties; attr != NULL; attr = attr->next) {
        if (attr->ns != NULL) {
            continue;  /* xsi: and the like: no UFTP field, as in the plain reader */
        }
        Py_ssize_t i = 0;
        for (; i < known; i++) {
            if (strcmp(PyBytes_AS_STRING(PyTuple_GET_ITEM(names, i)),
                       (const char *)attr->name) == 0) {
                break;
            }
        }
        if (i == known) {
            continue;
        }
        const xmlChar *text = attribute_text(attr);
        if (text == NULL) {
            return READ_UNSURE;
        }
        PyObject *parse = PyTuple_GET_ITEM(parses, i);
        PyObject *value = NULL;
        if (parse == (PyObject *)&PyLong_Type) {
            value = small_int(text);
        }
        if (value == NULL) {
            PyObject *str = PyUnicode_DecodeUTF8((const char *)text, strlen((const char *)text),
                                                 "strict");
            if (str == NULL) {
                return READ_ERROR;
            }
            value = PyObject_CallOneArg(parse, str);
            Py_DECREF(str);
            if (value == NULL) {
                if (PyErr_ExceptionMatches(PyExc_ValueError)
                        || PyErr_ExceptionMatches(PyExc_ArithmeticError)) {
                    PyErr_Clear();  /* the plain reader names the field */
                    return READ_UNSURE;
                }
                return READ_ERROR;
            }
        }
        int failed = PyDict_SetItem(out, PyTuple_GET_ITEM(keys, i), value);
        Py_DECREF(value);
        if (failed) {
            return READ_ERROR;
        }
    }
    return READ_OK;
}

static int table_fine(PyObject *names, PyObject *keys, PyObject *parses)
{
    if (!PyTuple_Check(names) || !PyTuple_Check(keys) || !PyTuple_Check(parses)
            || PyTuple_GET_SIZE(keys) != PyTuple_GET_SIZE(names)
            || PyTuple_GET_SIZE(parses) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_TypeError, "names, keys and parses: tuples of one length");
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_SetString(PyExc_TypeError, "names must be bytes");
            return 0;
        }
    }
    return 1;
}

/* attributes(element, names, keys, parses) -> dict | None */
static PyObject *attributes(PyObject *self, PyObject *args)
{
    PyObject *element, *names, *keys, *parses;
    if (!PyArg_ParseTuple(args, "OOOO", &element, &names, &keys, &parses)
            || !table_fine(names, keys, parses)) {
        return NULL;
    }
    xmlNode *node = node_of(element);
    if (node == NULL || node->type != XML_ELEMENT_NODE) {
        Py_RETURN_NONE;
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    int done = read_attributes(node, names, keys, parses, out);
    if (done == READ_OK) {
        return out;
    }
    Py_DECREF(out);
    if (done == READ_ERROR) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* rows(parent, tag, names, keys, parses) -> list[dict] | None: the fields of each child
 * element of `parent` named `tag` (without a namespace), in document order. */
static PyObject *rows(PyObject *self, PyObject *args)
{
    PyObject *element, *tag, *names, *keys, *parses;
    if (!PyArg_ParseTuple(args, "OSOOO", &element, &tag, &names, &keys, &parses)
            || !table_fine(names, keys, parses)) {
        return NULL;
    }
    xmlNode *parent = node_of(element);
    if (parent == NULL || parent->type != XML_ELEMENT_NODE) {
        Py_RETURN_NONE;
    }
    const char *name = PyBytes_AS_STRING(tag);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    for (xmlNode *child = parent->children; child != NULL; child = child->next) {
        if (child->type != XML_ELEMENT_NODE || child->ns != NULL
                || strcmp((const char *)child->name, name) != 0) {
            continue;
        }
        PyObject *row = PyDict_New();
        if (row == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int done = read_attributes(child, names, keys, parses, row);
        if (done == READ_OK && PyList_Append(out, row) != 0) {
            done = READ_ERROR;
        }
        Py_DECREF(row);
        if (done != READ_OK) {
            Py_DECREF(out);
            if (done == READ_ERROR) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    return out;
}

/* all_fine(items, keys, required, lows, highs, checks) -> bool
 * Are all these items (a list or tuple) of one leaf node fine? Each must be a dict (exactly)
 * whose keys are among `keys`; for column i, an absent or None value is fine unless
 * required[i]; a present one must be an int (exactly) within lows[i]..highs[i] where
 * checks[i] is None, else checks[i](value) must be None. False says only "look closer", as
 * the Python version in speed.list_check does; an error of a check function propagates. */
static PyObject *all_fine(PyObject *self, PyObject *args)
{
    PyObject *items, *keys, *required, *lows, *highs, *checks;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!", &items, &PyTuple_Type, &keys, &PyTuple_Type,
                          &required, &PyTuple_Type, &lows, &PyTuple_Type, &highs,
                          &PyTuple_Type, &checks)) {
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

/* One item through `ops`: ("c", text) writes text, ("f", key) writes the exact int at key,
 * ("g", key, ops) writes ops when the value at key is present and not None. */
static int render_item(PyObject *item, PyObject *ops, Buffer *out)
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
            int done = render_item(item, PyTuple_GET_ITEM(op, 2), out);
            if (done != RENDER_OK) {
                return done;
            }
            continue;
        }
        if (what != 'f' || value == NULL || !PyLong_CheckExact(value)) {
            return RENDER_UNSURE;  /* None, a str, a bool, a Decimal ...: Python writes it */
        }
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            return RENDER_UNSURE;
        }
        if (number == -1 && PyErr_Occurred()) {
            return RENDER_ERROR;
        }
        char digits[32];
        int length = snprintf(digits, sizeof digits, "%lld", number);
        if (put(out, digits, length)) {
            return RENDER_ERROR;
        }
    }
    return RENDER_OK;
}

/* render_rows(items, ops) -> str | None
 * The text that a template loop writes for these items, each through `ops` (see
 * render_item), for a list or tuple of exact dicts whose written values are exact ints;
 * None for anything else, which the generated Python then writes. */
static PyObject *render_rows(PyObject *self, PyObject *args)
{
    PyObject *items, *ops;
    if (!PyArg_ParseTuple(args, "OO!", &items, &PyTuple_Type, &ops)) {
        return NULL;
    }
    if (!PyList_CheckExact(items) && !PyTuple_CheckExact(items)) {
        Py_RETURN_NONE;
    }
    Buffer out = {NULL, 0, 0};
    int done = RENDER_OK;
    for (Py_ssize_t n = 0; done == RENDER_OK && n < PySequence_Fast_GET_SIZE(items); n++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, n);
        if (!PyDict_CheckExact(item)) {
            done = RENDER_UNSURE;
            break;
        }
        Py_INCREF(item);
        done = render_item(item, ops, &out);
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

static PyMethodDef methods[] = {
    {"render_rows", render_rows, METH_VARARGS, "render_rows(items, ops) -> str | None"},
    {"all_fine", all_fine, METH_VARARGS,
     "all_fine(items, keys, required, lows, highs, checks) -> bool"},
    {"shape_fine", shape_fine, METH_VARARGS,
     "shape_fine(root, max_attributes, max_depth, max_children) -> bool"},
    {"attributes", attributes, METH_VARARGS,
     "attributes(element, names, keys, parses) -> dict | None"},
    {"rows", rows, METH_VARARGS, "rows(parent, tag, names, keys, parses) -> list | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyuftp.message._native",
    "The reader's hot loops over an lxml tree, in C (see pyuftp.message.speed).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void)
{
    PyObject *etree = PyImport_ImportModule("lxml.etree");
    if (etree == NULL) {
        return NULL;
    }
    PyObject *type = PyObject_GetAttrString(etree, "_Element");
    Py_DECREF(etree);
    if (type == NULL) {
        return NULL;
    }
    if (!PyType_Check(type)) {
        Py_DECREF(type);
        PyErr_SetString(PyExc_ImportError, "lxml.etree._Element is not a type");
        return NULL;
    }
    element_type = (PyTypeObject *)type;  /* kept for the life of the process */
    return PyModule_Create(&module);
}
