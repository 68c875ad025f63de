"""Group partitions, shared by assets, sensors and schedules.

Keys are VK numeric group ids as strings: screen names change, ids do not.
"""

from __future__ import annotations

import re

import dagster as dg

GROUP_PARTITIONS_NAME = "vk_groups"

group_partitions = dg.DynamicPartitionsDefinition(name=GROUP_PARTITIONS_NAME)

_GROUP_KEY = re.compile(r"[1-9][0-9]{0,18}")
HOW_TO_REGISTER = (
    "A partition key is a community's positive numeric VK id (123 for vk.com/club123). To "
    "register a community by its screen name or link, drop a file naming it into the drop folder "
    "($VK_PIPELINE_DROP_DIR) or run `python -m vk_pipeline groups add NAME`; both resolve names to "
    "ids through VK."
)


def is_group_key(key: str) -> bool:
    """Whether `key` can be a group partition: a positive numeric id, no sign, no padding."""
    return _GROUP_KEY.fullmatch(key) is not None and int(key) < 2**63


def invalid_group_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if not is_group_key(k)]


class InvalidGroupKeyError(ValueError):
    """Partition keys typed by hand that are not group ids; nothing is crawled for them."""

    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(repr(k) for k in keys[:10]) + (" …" if len(keys) > 10 else "")
        super().__init__(
            f"partition key(s) {shown} of '{GROUP_PARTITIONS_NAME}': not a VK group id. {HOW_TO_REGISTER}"
        )
        self.keys = keys
