/* pyuftp.message._native: the message layer's hot loops, in C.
 *
 * An optional speed-up of pyuftp/message/speed.py (which holds the pure-Python ways of doing
 * the same). This file: the reader's loops over an lxml tree (the shape check, attributes
 * into dicts), read through lxml's public element layout, never changed; _native_write.c:
 * the checker's quick pass over a leaf list and a flat template loop's text. Every function
 * answers None (or False) where it is not sure, and the Python code then does the work the
 * plain way, so that what the caller sees never depends on this module: the same dicts, in
 * the same key order, the same XML, or the same error.
 *
 * It needs only Python's headers and the libxml2 headers that lxml carries (lxml.get_include());
 * no libxml2 symbol is linked: the tree is read through its structs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <libxml/tree.h>

#include "_native.h"

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

static PyMethodDef methods[] = {
    {"render_rows", native_render_rows, METH_VARARGS, "render_rows(items, ops[, filters]) -> str | None"},
    {"all_fine", native_all_fine, METH_VARARGS,
     "all_fine(items, keys, required, lows, highs, checks[, others]) -> bool"},
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
