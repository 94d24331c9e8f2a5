"""The API's JSON renderer (a module of its own: DRF reads its renderer setting while ``rest_framework.views`` is
imported, which ``config.api`` imports)."""

from typing import Any

from rest_framework import renderers


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer, where text holding a lone surrogate (stored before such text was refused) is written
    escaped (``\\ud800``, valid JSON) instead of failing the whole answer, and every page it would be on."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _EscapingJSONRenderer().render(data, accepted_media_type, renderer_context)


class _EscapingJSONRenderer(renderers.JSONRenderer):
    ensure_ascii = True  # every character past ASCII escaped: a lone surrogate too
