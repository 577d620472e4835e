"""A static HTTP server on 127.0.0.1 in a thread of the test process, for install trees.

It records every request, so "a re-run fetches nothing" is measured, not assumed, and can
cut one file short to prove that partial downloads are never used.
"""
import http.server
import threading


class TreeServer(object):
    """Serve root on 127.0.0.1 (ephemeral port); .requests lists 'PATH' / 'HEAD PATH'."""

    def __init__(self, root, truncate=None):
        self.requests = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super(Handler, self).__init__(*a, directory=root, **kw)

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                if truncate and self.path.endswith(truncate):
                    # Promise more bytes than are sent, then close.
                    self.send_response(200)
                    self.send_header('Content-Length', '999999')
                    self.end_headers()
                    self.wfile.write(b'partial')
                    return None
                return super(Handler, self).do_GET()

            def do_HEAD(self):
                outer.requests.append('HEAD ' + self.path)
                return super(Handler, self).do_HEAD()

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
