"""Reading a request body: JSON only, and never past the size limit."""

from __future__ import annotations

from typing import BinaryIO

from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestTimeout

from service.config import pace_broken
from service.errors import ApiError


def read_json_body() -> bytes:
    """The raw body of an application/json request (415 otherwise; 413 over MAX_BODY_BYTES;
    408 when the body does not keep the pace service/worker.py sets)."""
    try:
        return _read_json_body()
    except TimeoutError:
        raise _timed_out() from None
    except ClientDisconnected as error:
        # werkzeug's stream (a chunked body) reports the socket's timeout as a disconnect
        if isinstance(error.__context__, TimeoutError):
            raise _timed_out() from None
        raise


def _timed_out() -> RequestTimeout:
    config = current_app.config
    broken = pace_broken(config["CLIENT_TIMEOUT_SECONDS"], config["CLIENT_MIN_BYTES_PER_SECOND"])
    return RequestTimeout(f"the request body did not arrive in time: the client was {broken}")


def _read_json_body() -> bytes:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be application/json, not {request.mimetype or 'unlabelled'}",
        )
    limit = current_app.config["MAX_BODY_BYTES"]
    length = request.content_length
    if length is not None and length <= limit:
        # The usual body, of a stated length within the limit (one over it was refused before
        # the view): read as it is, without werkzeug's stream wrapper and its 64 KB buffers.
        return _read_exactly(request.environ["wsgi.input"], length)
    # A body streamed without a length (chunked) is cut at the limit by werkzeug, so one byte
    # more means it was over.
    body = request.get_data(cache=False)
    over = (
        len(body) >= limit
        and request.content_length is None
        and request.environ["wsgi.input"].read(1)
    )
    if over:
        raise ApiError(413, "too_large", f"the request body is over the limit of {limit} bytes")
    return body


def _read_exactly(stream: BinaryIO, length: int) -> bytes:
    """`length` bytes of `stream`; ClientDisconnected (400) if it ends first, as werkzeug's
    length-limited stream has it."""
    body = stream.read(length)
    if len(body) < length:
        chunks = [body]
        while length > (received := sum(map(len, chunks))):
            chunk = stream.read(length - received)
            if not chunk:
                raise ClientDisconnected()
            chunks.append(chunk)
        body = b"".join(chunks)
    return body
