"""A small OpenAI-compatible server for tests/openai.rs (Python stdlib only).

Listens on 127.0.0.1 on a free port and prints the port alone on its first stdout line. Then,
for every request, prints one JSON line describing what it saw (method, path, whether the
Authorization header carried the expected key, whether it carried the agent's placeholder key,
the User-Agent), flushed, so the test can tell what reached the upstream. The expected key comes
from the environment (OPENAI_TEST_EXPECTED_KEY), never from argv, and is never printed. The
server exits when its stdin reaches EOF, so it dies with the test that started it.

Routes:
  POST /v1/chat/completions  Authorization must be "Bearer <expected key>" (401 JSON otherwise).
                             Non-streaming: a chat.completion whose content echoes the last user
                             message. With "stream": true: an SSE stream (chunked transfer
                             encoding) of chat.completion.chunk events, one word each, with a
                             pause before each so that buffering anywhere on the way shows,
                             flushed one by one, ending with "data: [DONE]".
  anything else              404 JSON.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXPECTED_KEY = os.environ["OPENAI_TEST_EXPECTED_KEY"]
AGENT_KEY = "not-the-real-key"
# Pause before each streamed event (seconds).
STREAM_PAUSE = float(os.environ.get("OPENAI_TEST_STREAM_PAUSE", "0.3"))

print_lock = threading.Lock()


def report(record):
    with print_lock:
        sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openai-test-server/1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # stdout carries the JSON records; stderr stays quiet

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.read_body()
        report(self.record())
        self.send_json(404, error_body(f"no route for GET {self.path}", "not_found"))

    def do_POST(self):
        raw = self.read_body()
        record = self.record()
        if self.path != "/v1/chat/completions":
            report(record)
            self.send_json(404, error_body(f"no route for POST {self.path}", "not_found"))
            return
        if not record["authorized"]:
            report(record)
            self.send_json(
                401,
                error_body("Incorrect API key provided.", "invalid_api_key", "invalid_request_error"),
            )
            return
        try:
            request = json.loads(raw)
            messages = request["messages"]
            model = request["model"]
        except (ValueError, KeyError, TypeError) as error:
            report(record)
            self.send_json(400, error_body(f"bad request body: {error}", "bad_request"))
            return
        user_text = next(
            (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        record["stream"] = bool(request.get("stream"))
        record["user_text"] = user_text
        report(record)
        content = f"echo: {user_text}"
        if request.get("stream"):
            self.stream_completion(model, content)
        else:
            self.send_json(200, completion(model, content, user_text))

    def record(self):
        authorization = self.headers.get("Authorization", "")
        return {
            "method": self.command,
            "path": self.path,
            "authorized": authorization == f"Bearer {EXPECTED_KEY}",
            "agent_key_seen": AGENT_KEY in authorization,
            "authorization_headers": len(self.headers.get_all("Authorization") or []),
            "user_agent": self.headers.get("User-Agent", ""),
        }

    def stream_completion(self, model, content):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        created = int(time.time())
        chunk_id = "chatcmpl-test-stream"
        words = content.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        events = [chunk(chunk_id, created, model, {"role": "assistant", "content": ""}, None)]
        events += [chunk(chunk_id, created, model, {"content": piece}, None) for piece in pieces]
        events.append(chunk(chunk_id, created, model, {}, "stop"))
        for event in events:
            time.sleep(STREAM_PAUSE)
            self.write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self.write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def error_body(message, code, kind="invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def completion(model, content, user_text):
    prompt_tokens = len(user_text.split())
    completion_tokens = len(content.split())
    return {
        "id": "chatcmpl-test-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chunk(chunk_id, created, model, delta, finish_reason):
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def exit_when_stdin_closes():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    report_port = str(server.server_address[1])
    with print_lock:
        sys.stdout.write(report_port + "\n")
        sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
