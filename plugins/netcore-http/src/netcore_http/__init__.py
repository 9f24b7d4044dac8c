"""HTTP/1.1 for netcore: framing with httptools, WSGI hosting to PEP 3333."""
