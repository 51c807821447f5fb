"""The SDK's metadata calls: filters (builder and strings), sort keys, counts, merge patch
and bulk updates, against the real services."""

from __future__ import annotations

import uuid

import pytest

from corral.client import Client, field
from corral.errors import InvalidArgument


@pytest.fixture
def dataset(client: Client) -> str:
    name = f"sdk-meta-{uuid.uuid4().hex[:8]}"
    client.create_dataset(name)
    for i in range(6):
        client.upload_bytes(bytes(i + 1), name, f"f{i}.jpg" if i % 2 else f"f{i}.png",
                            remote_dir=f"/d{i % 3}", metadata={"camera": i % 3, "i": i})
    return name


def test_list_and_count_with_filters(client: Client, dataset: str) -> None:
    camera = field("metadata.user.camera")
    found = list(client.list_items(dataset, filter=(camera == 1) | (camera == 2),
                                   order_by="-size"))
    assert [i["name"] for i in found] == ["f5.jpg", "f4.png", "f2.png", "f1.jpg"]
    assert client.count_items(dataset, filter=["metadata.user.camera!=0", "name~*.jpg"]) == 2
    assert client.count_items(dataset, "/d1") == 2 and client.count_items(dataset) == 3
    in_folder = list(client.list_items(dataset, "/d1", filter="size>=0"))
    assert [i["filename"] for i in in_folder] == ["/d1/f1.jpg", "/d1/f4.png"]
    with pytest.raises(InvalidArgument, match="unknown field 'colour'"):
        list(client.list_items(dataset, filter="colour=red"))


def test_patch_replace_and_bulk_update(client: Client, dataset: str) -> None:
    item = client.get_item_by_path(dataset, "/d0/f0.png")
    patched = client.update_item(item["id"], metadata_patch={"camera": None, "lot": {"n": 1}})
    assert patched["metadata"]["user"] == {"i": 0, "lot": {"n": 1}}
    replaced = client.update_item(item["id"], user_metadata={"x": 1})
    assert replaced["metadata"]["user"] == {"x": 1}
    with pytest.raises(InvalidArgument, match="not both"):
        client.update_item(item["id"], user_metadata={}, metadata_patch={})
    assert client.update_matching_items(dataset, field("name").glob("*.jpg"),
                                        metadata_patch={"kind": "jpeg"}) == 3
    assert client.count_items(dataset, filter="metadata.user.kind=jpeg") == 3
    assert client.update_matching_items(dataset, "metadata.user.kind=jpeg",
                                        user_metadata={"kind": "photo"}) == 3
    jpegs = list(client.list_items(dataset, filter="name~*.jpg"))
    assert [i["metadata"]["user"] for i in jpegs] == [{"kind": "photo"}] * 3
    with pytest.raises(InvalidArgument, match="exactly one"):
        client.update_matching_items(dataset, "size>0")
