"""REST API parsers that hold request bodies to DATA_UPLOAD_MAX_MEMORY_SIZE.

DRF reads a request body as a stream, which Django's own limit does not cover, so without
these a single POST could pull any amount into memory. A body over the limit is refused
with 413 before it is read; the limit counts file parts too, since no API endpoint takes
uploads.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


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
            if str(declared).isdigit() and int(declared) > limit:
                raise RequestTooLarge(limit)
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig:
            raise RequestTooLarge(limit) from None
        except (TooManyFieldsSent, TooManyFilesSent) as exc:
            raise ParseError(str(exc)) from None


class BoundedJSONParser(BoundedParserMixin, JSONParser):
    pass


class BoundedFormParser(BoundedParserMixin, FormParser):
    pass


class BoundedMultiPartParser(BoundedParserMixin, MultiPartParser):
    pass
