"""Library areas of the Python standard library: the labels of the topic task.

The areas follow the chapters of the Python Library Reference, merged into
twelve classes large enough to learn from. A module's area is looked up by its
longest dotted prefix in :data:`MODULE_AREAS` (``email.mime.text`` -> ``email``
-> internet); the ``pydoc_data`` topics (the Language Reference) form their own
area. Modules not listed fall in :data:`OTHER`, kept in the corpus but left out
of the topic task.

References:
  The Python Standard Library reference, table of contents
  (docs.python.org/3/library), which groups modules into these chapters.
"""

from __future__ import annotations

OTHER = "other"

#: The topic classes, in label order (ClassLabel ids 0..11).
AREAS: tuple[str, ...] = (
    "text",               # text processing, codecs, internationalisation
    "data_types",         # containers, dates, enums, functional tools
    "numeric",            # numbers, math, decimal, random, statistics
    "files",              # paths, directories, temporary files, io
    "storage",            # persistence, compression, archives, file formats, media
    "system",             # os services, logging, cli parsing, crypto, signals
    "concurrency",        # threads, processes, async
    "internet",           # sockets, protocols, email, json, html/xml, urls
    "dev_tools",          # typing, docs, testing, debugging, profiling, packaging
    "runtime",            # interpreter services and importing
    "language_services",  # ast, tokenize, dis, compile
    "language_reference", # the pydoc_data topics
)

_GROUPS: dict[str, str] = {
    "text": "string re difflib textwrap unicodedata stringprep readline rlcompleter codecs gettext locale "
            "shlex sre_compile sre_constants sre_parse",
    "data_types": "datetime zoneinfo calendar collections heapq bisect array weakref types copy pprint reprlib "
                  "enum graphlib dataclasses struct itertools functools operator",
    "numeric": "numbers math cmath decimal fractions random statistics",
    "files": "pathlib posixpath ntpath genericpath fileinput stat filecmp tempfile glob fnmatch linecache "
             "shutil io",
    "storage": "pickle copyreg shelve marshal dbm sqlite3 zlib gzip bz2 lzma zipfile tarfile csv configparser "
               "tomllib netrc plistlib xdrlib wave colorsys aifc sunau audioop chunk imghdr sndhdr",
    "system": "os posix argparse optparse getopt logging getpass curses platform errno ctypes select selectors "
              "signal mmap pty tty termios fcntl resource syslog grp pwd spwd nis crypt hashlib hmac secrets "
              "ossaudiodev pipes time",
    "concurrency": "threading multiprocessing concurrent subprocess sched queue contextvars asyncio asynchat "
                   "asyncore",
    "internet": "socket ssl socketserver email json mailbox mimetypes base64 binascii quopri uu html xml "
                "pyexpat webbrowser urllib nturl2path http ftplib poplib imaplib smtplib smtpd nntplib telnetlib "
                "uuid xmlrpc ipaddress wsgiref cgi cgitb mailcap",
    "dev_tools": "typing pydoc doctest unittest bdb faulthandler pdb cProfile profile pstats timeit trace "
                 "tracemalloc venv zipapp distutils cmd code codeop",
    "runtime": "sys sysconfig builtins warnings contextlib abc atexit traceback gc inspect site importlib pkgutil "
               "modulefinder runpy zipimport imp",
    "language_services": "ast symtable token keyword tokenize tabnanny pyclbr py_compile compileall dis opcode "
                         "pickletools",
    "language_reference": "pydoc_data",
}

#: ``{module or package name: area}``.
MODULE_AREAS: dict[str, str] = {module: area for area, names in _GROUPS.items() for module in names.split()}


def area_of(module: str) -> str:
    """Returns the area of a dotted module name (its longest listed prefix), or :data:`OTHER`.

    Example: ``area_of("email.mime.text") == "internet"``, ``area_of("os.path")
    == "system"``, ``area_of("no_such") == "other"``.
    """
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        area = MODULE_AREAS.get(".".join(parts[:end]))
        if area is not None:
            return area
    return OTHER
