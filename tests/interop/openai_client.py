"""The official `openai` Python SDK as an agent would use it, for tests/openai.rs.

Usage: openai_client.py BASE_URL PROMPT

Talks to BASE_URL (the bridge: http://127.0.0.1:PORT/http/openai/v1) with a placeholder API key,
as an agent inside a sandbox does; the proxy behind the bridge puts the real key in. Does one
chat completion, one streamed chat completion, and one call the proxy's rules refuse, then
prints one JSON object with what came back. Exits non-zero (with a traceback on stderr) if a call
that should succeed fails.
"""

import json
import sys
import time

import openai


def main():
    base_url, prompt = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(
        base_url=base_url, api_key="not-the-real-key", max_retries=0, timeout=30.0
    )
    messages = [{"role": "user", "content": prompt}]
    result = {"sdk_version": openai.__version__}

    completion = client.chat.completions.create(model="test-model", messages=messages)
    result["chat"] = {
        "id": completion.id,
        "object": completion.object,
        "model": completion.model,
        "content": completion.choices[0].message.content,
        "role": completion.choices[0].message.role,
        "finish_reason": completion.choices[0].finish_reason,
        "total_tokens": completion.usage.total_tokens if completion.usage else None,
    }

    started = time.monotonic()
    stream = client.chat.completions.create(model="test-model", messages=messages, stream=True)
    pieces, arrivals, finish_reason, objects, chunks = [], [], None, set(), 0
    for chunk in stream:
        chunks += 1
        objects.add(chunk.object)
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
                arrivals.append(time.monotonic() - started)
            if choice.finish_reason:
                finish_reason = choice.finish_reason
    result["stream"] = {
        "chunks": chunks,
        "objects": sorted(objects),
        "content": "".join(pieces),
        "finish_reason": finish_reason,
        "arrivals": arrivals,
    }

    try:
        client.models.list()
        result["denied"] = {"status": None}
    except openai.APIStatusError as error:
        result["denied"] = {
            "status": error.status_code,
            "error_type": type(error).__name__,
            "message": str(error),
            # The decoded body's "error" member: the proxy's own explanation (a string, where
            # OpenAI's API puts an object with a "message").
            "body": error.body,
        }

    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
