/* The RESP fast path's request splitter, in C: one pass over a read.
 *
 * Why C: a pipelined read of 16 SETs cost about 1 us per command in Python-level work
 * before any command ran -- hiredis's reader (0.4 us), then a check that what hiredis
 * accepted is exactly what Redis accepts (0.56 us: hiredis reads replies, and takes
 * "+PING", "$03" or nested arrays that Redis refuses). This function does both in one
 * scan that only ever accepts the canonical request encoding.
 *
 * Contract: split(max_bulk, max_multibulk, data) returns the commands of ``data`` (a
 * list of lists of bytes) when ``data`` is, entirely, a sequence of complete requests of
 * the form "*<argc>\r\n" followed by argc times "$<len>\r\n<len bytes>\r\n", with argc
 * in 1..max_multibulk, len in 0..max_bulk, and both counts written as Redis's
 * string2ll() reads them (digits only, no leading zero, no sign). Anything else --
 * an inline command, a read ending inside a request, "*0", a count Redis refuses, a
 * trailer that is not CRLF -- returns None, and the caller hands the read to the
 * reference parser (netcore_resp.framing), which answers it exactly as Redis does.
 * So this code never has to produce an error reply: it only has to be sure.
 *
 * It is a pure function of its arguments: no state between calls, no global state,
 * safe under any number of threads (it holds the GIL throughout).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Longer counts than this are refused by the callers' limits anyway (max_bulk is at most
 * a few GB); 18 digits cannot overflow a long long. */
#define MAX_DIGITS 18
/* The shortest argument, "$0\r\n\r\n": a count of arguments that the rest of the read
 * cannot hold is a read that ends inside the request, and the list is never allocated. */
#define MIN_ARG_BYTES 6

/* Read "<digits>\r\n" at *pos (just past the '*' or '$'); 0 if it is not canonical. */
static int
read_count(const char **pos, const char *end, long long *value)
{
    const char *p = *pos;
    long long n = 0;
    int digits = 0;

    if (p >= end || *p < '0' || *p > '9')
        return 0;
    if (*p == '0') {  /* "0" alone: string2ll refuses a leading zero */
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (++digits > MAX_DIGITS)
                return 0;
            n = n * 10 + (*p - '0');
            p++;
        }
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return 0;
    *pos = p + 2;
    *value = n;
    return 1;
}

static PyObject *
split(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    long long max_bulk, max_multibulk;
    PyObject *commands = NULL;
    PyObject *command = NULL;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "split(max_bulk, max_multibulk, data)");
        return NULL;
    }
    max_bulk = PyLong_AsLongLong(args[0]);
    if (max_bulk == -1 && PyErr_Occurred())
        return NULL;
    max_multibulk = PyLong_AsLongLong(args[1]);
    if (max_multibulk == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_SIMPLE) < 0)
        return NULL;

    const char *pos = view.buf;
    const char *end = pos + view.len;
    commands = PyList_New(0);
    if (commands == NULL)
        goto error;
    if (pos == end)
        goto not_canonical;  /* nothing read: not a sequence of requests */

    while (pos < end) {
        long long argc, len;
        if (*pos != '*')
            goto not_canonical;
        pos++;
        if (!read_count(&pos, end, &argc) || argc < 1 || argc > max_multibulk)
            goto not_canonical;
        if (argc > (end - pos) / MIN_ARG_BYTES)
            goto not_canonical;
        command = PyList_New((Py_ssize_t)argc);
        if (command == NULL)
            goto error;
        for (Py_ssize_t i = 0; i < (Py_ssize_t)argc; i++) {
            if (pos >= end || *pos != '$')
                goto not_canonical;
            pos++;
            if (!read_count(&pos, end, &len) || len > max_bulk)
                goto not_canonical;
            if (end - pos < len + 2 || pos[len] != '\r' || pos[len + 1] != '\n')
                goto not_canonical;
            PyObject *arg = PyBytes_FromStringAndSize(pos, (Py_ssize_t)len);
            if (arg == NULL)
                goto error;
            PyList_SET_ITEM(command, i, arg);  /* steals the reference */
            pos += len + 2;
        }
        if (PyList_Append(commands, command) < 0)
            goto error;
        Py_CLEAR(command);
    }
    PyBuffer_Release(&view);
    return commands;

not_canonical:
    /* A list made by PyList_New holds NULLs in the slots not yet set: DECREF copes. */
    Py_XDECREF(command);
    Py_XDECREF(commands);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;

error:
    Py_XDECREF(command);
    Py_XDECREF(commands);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(max_bulk, max_multibulk, data) -> list of commands, or None if data is not\n"
     "entirely complete canonical multibulk requests within the limits."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_multibulk",
    .m_doc = "The RESP fast path's request splitter (see netcore_resp.splitting).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__multibulk(void)
{
    return PyModule_Create(&module);
}
