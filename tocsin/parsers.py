"""Holding request bodies outside the ingest views to DATA_UPLOAD_MAX_MEMORY_SIZE.

DRF reads a request body as a stream, which Django's own limit does not cover, so without
the parsers below a single POST could pull any amount into memory. And Django counts only
the plain fields of a multipart body against the limit, streaming file parts to disk
however large they are. A body over the limit is refused with 413 before it is read; file
parts count too, since no admin page or API endpoint takes uploads.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

from tocsin import strictjson


class BoundedUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: refuses a multipart body, files included, over the
    limit. Django answers the RequestDataTooBig with 400 (tocsin.views.bad_request: 413).
    Inbound mail webhooks never get here: integrations.mail_posts reads their forms."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and content_length > limit:
            raise RequestDataTooBig(f"Request body is larger than {limit} bytes.")

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int):
        super().__init__(f"Request body is larger than {limit} bytes.")


class BoundedParserMixin:
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            request = (parser_context or {}).get("request")
            declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
            if str(declared).isascii() and str(declared).isdigit() and int(declared) > limit:
                raise RequestTooLarge(limit)
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig:
            raise RequestTooLarge(limit) from None
        except (TooManyFieldsSent, TooManyFilesSent) as exc:
            raise ParseError(str(exc)) from None


class StrictJSONParser(JSONParser):
    """JSON read as the ingest webhooks read it (tocsin.strictjson): a lone surrogate, a
    NUL, NaN or 1e999 in a mapping or a rule would otherwise be stored, or echoed in an
    error the renderer cannot encode, and deep nesting would exhaust the recursion limit;
    each ends in a 500 instead of a 400 naming the place."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return strictjson.loads(stream.read().decode(encoding))
        except LookupError:
            # Django takes any codec Python knows as a charset, base64 and rot13 included.
            raise ParseError(f"JSON parse error - unusable charset {encoding!r}") from None
        except ValueError as exc:  # JSONProblem and UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}") from None


class BoundedJSONParser(BoundedParserMixin, StrictJSONParser):
    pass


class BoundedFormParser(BoundedParserMixin, FormParser):
    pass


class BoundedMultiPartParser(BoundedParserMixin, MultiPartParser):
    pass
