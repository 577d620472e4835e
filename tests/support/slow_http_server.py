"""A static HTTP server in its own process that sends files slowly, so a test can kill it
(SIGKILL) in the middle of a download. Prints its port on stdout, then serves forever.

    python3 slow_http_server.py ROOT [CHUNK_BYTES] [DELAY_SECONDS] [MODE]

MODE: 'length' (Content-Length, the default) or 'close' (no Content-Length: the end of the
body is the end of the connection, as HTTP/1.0 servers and some proxies do).
"""
import http.server
import os
import sys
import time


def main():
    root = sys.argv[1]
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    mode = sys.argv[4] if len(sys.argv) > 4 else 'length'

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.0'

        def log_message(self, *a):
            pass

        def do_GET(self):
            path = os.path.join(root, self.path.lstrip('/'))
            if not os.path.isfile(path):
                self.send_error(404)
                return
            with open(path, 'rb') as f:
                data = f.read()
            self.send_response(200)
            if mode == 'length':
                self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            limit = len(data)
            if mode == 'close' and os.environ.get('KVMOPS_CUT_AT'):
                limit = int(os.environ['KVMOPS_CUT_AT'])
            for i in range(0, limit, chunk):
                self.wfile.write(data[i:min(i + chunk, limit)])
                self.wfile.flush()
                if len(data) > chunk:
                    time.sleep(delay)

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    sys.stdout.write('%d\n' % httpd.server_address[1])
    sys.stdout.flush()
    httpd.serve_forever()


if __name__ == '__main__':
    main()
