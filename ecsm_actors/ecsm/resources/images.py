"""ECSM images and registries: list, summary, config, details, counts (ecsm-api.md §6).

Runs in the caller's thread over a shared RestClient. ``registryId`` is always sent on the
list (even empty). Image config is unwrapped from ``{config: …}`` and a null config is an
error, as in the Go client (A-16).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.resources.paging import DEFAULT_PAGE_SIZE, list_all
from ecsm_actors.ecsm.rest import RestClient, build_path, query
from ecsm_actors.ecsm.types.common import Page, decode_page
from ecsm_actors.errors import EcsmDecodeError, EcsmNotFound

# The image types are imported by the methods that return them: the service controller
# only asks for image configs (plain dicts), and need not create them at its start.
if TYPE_CHECKING:
    from ecsm_actors.ecsm.types.images import (
        ImageDetails,
        ImageListItem,
        ImageStatistics,
        RepositoryInfo,
    )

LOCAL_REGISTRY = "local"


class ImageClient:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    def list(self, page_num: int, page_size: int, registry_id: str = LOCAL_REGISTRY,
             name: str | None = None, os: str | None = None,
             author: str | None = None) -> Page[ImageListItem]:
        from ecsm_actors.ecsm.types.images import ImageListItem

        params = [("registryId", registry_id)] + query(
            {"pageNum": page_num, "pageSize": page_size, "name": name, "os": os,
             "author": author})
        return decode_page(ImageListItem, self.rest.get(build_path("image"), params))

    def list_all(self, registry_id: str = LOCAL_REGISTRY, name: str | None = None,
                 os: str | None = None, author: str | None = None,
                 page_size: int = DEFAULT_PAGE_SIZE) -> builtins.list[ImageListItem]:
        return list_all(lambda n, s: self.list(n, s, registry_id, name, os, author),
                        page_size)

    def summary(self) -> ImageStatistics:
        from ecsm_actors.ecsm.types.images import ImageStatistics

        return wire.decode_required(ImageStatistics, self.rest.get(build_path("image/summary")))

    def config(self, ref: str) -> dict[str, Any]:
        """GET ``image/config?ref=name@tag#os``: the unwrapped EcsImageConfig wire dict."""
        data = self.rest.get(build_path("image/config"), [("ref", ref)])
        if data is not None and not isinstance(data, dict):
            raise wire.mismatch("data", "object", data)
        config = (data or {}).get("config")
        if config is None:
            raise EcsmDecodeError(f"get image config for '{ref}' was successful, "
                                  "but the 'config' field is null")
        if not isinstance(config, dict):
            raise wire.mismatch("data.config", "object", config)
        return config

    def details(self, registry_id: str, image_id: str) -> ImageDetails:
        from ecsm_actors.ecsm.types.images import ImageDetails

        path = build_path("registry", ("registry id", registry_id), "image",
                          ("image id", image_id))
        return wire.decode_required(ImageDetails, self.rest.get(path))

    def details_by_ref(self, registry_id: str, ref: str) -> ImageDetails:
        """Find ``name@tag[#os]`` in the registry's list, then fetch its details (a helper;
        ValueError for a malformed ref, EcsmNotFound when absent)."""
        from ecsm_actors.ecsm.types.images import parse_ref

        parsed = parse_ref(ref)
        for item in self.list_all(registry_id, name=parsed.name):
            if item.name == parsed.name and item.tag == parsed.tag and (
                    not parsed.os or item.os == parsed.os):
                return self.details(registry_id, item.id)
        raise EcsmNotFound(404, f"image with ref '{ref}' not found in registry '{registry_id}'")

    def repositories(self, name: str | None = None, os: str | None = None,
                     author: str | None = None) -> builtins.list[RepositoryInfo]:
        from ecsm_actors.ecsm.types.images import RepositoryInfo

        params = query({"name": name, "os": os, "author": author})
        return wire.decode_list(RepositoryInfo, self.rest.get(build_path("image/count"), params))
